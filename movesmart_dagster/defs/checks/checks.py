"""Per-day asset checks on every table.

The checks are partitioned like the tables (the one daily partitions definition): a check
result belongs to one day, reads only that day's files (`DuckDBResource.views(day=...)`: the Iceberg
scan plan prunes to the partition) and a new materialization of that day clears it. The
automation sensor (`defs/automation.py`) runs them for the days that changed since their last
result, so the cost of a round follows the new data, not the history; a failing day blocks that
day's analytics only. Why partitioned checks rather than results reported per partition by one
whole-table op: Dagster then tracks each day's status itself (the UI shows it per partition,
`all_deps_blocking_checks_passed` gates the analytics day on it, and a new materialization of the
day resets it), with no bookkeeping of ours.

Each table gets one multi-check (one DuckDB scan answers all its rules), subsettable: every
check of it can also run on its own — the *Execute* button of a table's Checks tab runs just
that check, without materializing the (external) table, which nothing but the streaming run
can do. Dagster's UI offers that button only for a check that is its own unit of execution;
a non-subsettable multi-check disabled it ("cannot execute without materializing the asset").
The checks are blocking: the automation computes an analytics day only once its source day's
checks passed. A manual or backfill run of the analytics does not wait for the automation, so
the analytics also apply the same rules to the day they compute (`quality.gate`) and refuse a
day with bad rows — that is where bad data would otherwise be consumed.
"""

import warnings
from collections.abc import Iterator

import dagster as dg

from movesmart_dagster.defs.automation import check_condition
from movesmart_dagster.defs.checks import quality
from movesmart_dagster.defs.keys import QUARANTINE_KEY, TABLE_KEYS
from movesmart_dagster.defs.resources import DuckDBResource
from movesmart_dagster.schemas import QUARANTINE_TABLE, TABLES

_DESCRIPTIONS = {
    "no_null_ids": "Every row has an id.",
    "no_duplicate_ids": "No id appears twice (exactly-once landing).",
    "coordinates_in_range": "Latitude within -90..90 and longitude within -180..180.",
    "speed_in_range": "Speed within the range declared in the schema (0..300 km/h).",
    "quarantine_share_below_threshold": "Share of quarantined records per topic at most MOVESMART_QUARANTINE_MAX_SHARE.",
}


def _result(table: str, r: quality.RuleResult) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=TABLE_KEYS[table],
        check_name=r.name,
        passed=r.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=r.description,
        metadata={k: dg.MetadataValue.json(v) if isinstance(v, dict) else v for k, v in r.metadata.items()},
    )


def _table_check(table: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetChecksDefinition:
    with warnings.catch_warnings():
        # partitioned checks are a preview feature of Dagster 1.13: said once here, not per load
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(
                name,
                asset=TABLE_KEYS[table],
                blocking=True,
                description=_DESCRIPTIONS[name],
                partitions_def=partitions,
                automation_condition=check_condition(),
            )
            for name in quality.rule_names(table)
        ]

    @dg.multi_asset_check(
        specs=specs, name=f"{table}_quality", description=f"Quality rules of {table}", can_subset=True
    )
    def _check(
        context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        day = context.partition_key
        with duckdb.views(day=day) as con:  # views over that day's files only
            if table == QUARANTINE_TABLE:
                share = duckdb.settings().quarantine_max_share
                yield _result(table, quality.evaluate_quarantine(con, share, day))
            else:
                for r in quality.evaluate_table(con, table, day):  # one scan answers every rule
                    if r.name in selected:
                        yield _result(table, r)

    return _check


def table_checks(partitions: dg.DailyPartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    checks = [_table_check(t, partitions) for t in (*TABLES, QUARANTINE_TABLE)]
    assert QUARANTINE_KEY in {spec.asset_key for c in checks for spec in c.check_specs}
    return checks


def table_check_keys(defs: dg.Definitions) -> set[dg.AssetCheckKey]:
    """The per-day quality checks of the tables and quarantine in `defs`."""
    tables = {*TABLE_KEYS.values(), QUARANTINE_KEY}
    graph = defs.resolve_asset_graph()
    return {
        k for k in graph.asset_check_keys if k.asset_key in tables and graph.get(k).partitions_def is not None
    }


def day_checks_job(defs: dg.Definitions, checks: set[dg.AssetCheckKey] | None = None) -> dg.JobDefinition:
    """The job a run of day checks executes, given the day as its partition key: the implicit
    asset job with `checks` (default: every table check) and no asset — what the automation
    sensor launches for a changed day and the Checks tab's *Execute* for one check. (A checks-only
    `define_asset_job` over partitioned checks does not resolve in Dagster 1.13.)"""
    return defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=checks if checks is not None else table_check_keys(defs)
    )
