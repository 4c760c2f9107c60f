"""Asset checks on every table, and the job/schedule that runs them.

Each table gets one multi-check (one DuckDB scan answers all its rules), subsettable: every
check of it can also run on its own — the *Execute* button of a table's Checks tab runs just
that check, without materializing the (external) table, which nothing but the streaming run
can do. Dagster's UI offers that button only for a check that is its own unit of execution;
a non-subsettable multi-check disabled it ("cannot execute without materializing the asset").
The checks are blocking: in a run that also materializes something downstream, a failing check stops it.
The table assets are materialized by the long-running streaming run, not by a run that
could be blocked, so the analytics also apply the same rules to the day they compute
(`quality.gate`) and refuse a day with bad rows — that is where bad data would otherwise
be consumed.
"""

from collections.abc import Iterator

import dagster as dg

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


def _table_check(table: str) -> dg.AssetChecksDefinition:
    specs = [
        dg.AssetCheckSpec(name, asset=TABLE_KEYS[table], blocking=True, description=_DESCRIPTIONS[name])
        for name in quality.rule_names(table)
    ]

    @dg.multi_asset_check(
        specs=specs, name=f"{table}_quality", description=f"Quality rules of {table}", can_subset=True
    )
    def _check(
        context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
    ) -> Iterator[dg.AssetCheckResult]:
        selected = {key.name for key in context.selected_asset_check_keys}
        con = duckdb.connect()
        try:
            if table == QUARANTINE_TABLE:
                share = duckdb.settings().quarantine_max_share
                yield _result(table, quality.evaluate_quarantine(con, share))
            else:
                for r in quality.evaluate_table(con, table):  # one scan answers every rule
                    if r.name in selected:
                        yield _result(table, r)
        finally:
            con.close()

    return _check


TABLE_CHECKS: list[dg.AssetChecksDefinition] = [_table_check(t) for t in (*TABLES, QUARANTINE_TABLE)]
assert QUARANTINE_KEY in {spec.asset_key for c in TABLE_CHECKS for spec in c.check_specs}

table_checks_job = dg.define_asset_job(
    "table_quality_job",
    selection=dg.AssetSelection.checks(*TABLE_CHECKS),
    description="Run the data-quality checks of every table (DuckDB over the files).",
    # a failing blocking check fails this run; the alert is the check's own, not a second one
    tags={"movesmart/alert_on_failure": "false"},
)

table_checks_schedule = dg.ScheduleDefinition(
    name="table_quality_schedule",
    job=table_checks_job,
    cron_schedule="*/10 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes: the quality checks of every table.",
)
