"""Compaction of closed days: an asset per day, a check per table and day, and their schedule.

Why a daily-partitioned asset: the stream leaves a closed day as many small files per table, and
a day compacted is a fact Dagster can show and reason about per partition — which days were
compacted, when, and what it did (files and bytes before and after, per table, with a chart).
Only closed days are compacted: a day is closed MOVESMART_LATE_GRACE_MINUTES after its end, when late records have
mostly arrived (a later one only adds a file, which the next run folds in). Rewrites commit
through the catalog like any append (`tables/maintenance.py`), so the running stream and readers
are never disturbed.

Why the per-(table, day) checks sit on the compaction asset, not on the tables: every check of a
table runs in each analytics run of that day (the analytics job selects the source tables'
checks), which comes before the day's compaction, so a file-layout check there would fail every
day for a state the next step fixes. On the compaction asset they say what they mean: after this
day's compaction, each table's day is as lean as its size allows.

Why the check reads Iceberg metadata: `inspect.partitions()` gives a day's live data files and
bytes from the current snapshot's manifests, without listing storage (where expired and orphan
files also lie) and without a scan.
"""

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from movesmart_dagster.analytics import plots
from movesmart_dagster.defs import partitions as partitions_lib
from movesmart_dagster.defs.keys import COMPACTION_KEY, GROUP_MAINTENANCE, MAINTENANCE_POOL, TABLE_KEYS
from movesmart_dagster.defs.resources import CatalogResource, SparkResource
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.tables import maintenance

# files a closed day may hold beyond what its bytes need: the rewrite's bin packing may leave one
# short file, and one late append after compaction is not worth another rewrite
FILE_SLACK = 1
# how far back the schedule looks for closed days changed since their last compaction
LOOKBACK_DAYS = 7
JOB_NAME = "table_maintenance_job"


@dataclass(frozen=True)
class DayFiles:
    """A day partition's live data files, bytes and rows, from the table's Iceberg metadata."""

    files: int
    bytes: int
    rows: int


def check_name(table: str) -> str:
    return f"{table}_files_fit_size"


def day_files(settings: Settings, table: str, day: date, catalog: Any = None) -> DayFiles:
    """Files, bytes and rows of one day of a table, from `inspect.partitions()` (no scan, no listing)."""
    from pyiceberg.exceptions import NoSuchTableError

    from movesmart_dagster.tables.catalog import load_table

    try:
        iceberg = load_table(settings, table, catalog)
    except NoSuchTableError:  # before the streaming job's first start creates the tables
        return DayFiles(0, 0, 0)
    if iceberg.current_snapshot() is None:  # a table nothing was ever appended to
        return DayFiles(0, 0, 0)
    for p in iceberg.inspect.partitions().to_pylist():
        if p["partition"]["event_day"] == day:
            return DayFiles(p["file_count"], p["total_data_file_size_in_bytes"], p["record_count"])
    return DayFiles(0, 0, 0)


def allowed_files(total_bytes: int, target_file_bytes: int) -> int:
    """The files a day of this size needs at the target file size, plus the slack."""
    return math.ceil(total_bytes / target_file_bytes) + FILE_SLACK


def compaction_markdown(done: list[maintenance.Compaction]) -> str:
    """Files and bytes per table, before and after, as a markdown table."""
    lines = ["| table | files before | files after | bytes before | bytes after |", "|---|---|---|---|---|"]
    lines += [
        f"| {c.table} | {c.before.files} | {c.after.files} | {c.before.bytes} | {c.after.bytes} |"
        for c in done
    ]
    return "\n".join(lines)


def compaction_totals(
    context: dg.AssetExecutionContext, done: list[maintenance.Compaction]
) -> dict[str, int]:
    """Logs each table and day the rewrite changed; files and bytes before and after, summed."""
    for c in done:
        if c.before.files != c.after.files:
            context.log.info(c.describe())
    return {
        "files_before": sum(c.before.files for c in done),
        "files_after": sum(c.after.files for c in done),
        "bytes_before": sum(c.before.bytes for c in done),
        "bytes_after": sum(c.after.bytes for c in done),
    }


def compaction_chart(done: list[maintenance.Compaction], day: str) -> str:
    """Files and bytes per table, before and after, side by side (a PNG in markdown)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    x = range(len(done))
    panels = (("data files", lambda p: p.files), ("MiB", lambda p: p.bytes / 2**20))
    for ax, (label, value) in zip(axes, panels, strict=True):
        ax.bar([i - 0.2 for i in x], [value(c.before) for c in done], 0.4, label="before", color="#d9844f")
        ax.bar([i + 0.2 for i in x], [value(c.after) for c in done], 0.4, label="after", color="#4f6fd9")
        ax.set_xticks(list(x), [c.table for c in done], rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{label} on {day}", fontsize=9)
    axes[0].legend(fontsize=7)
    return plots.png_markdown(fig, f"compaction {day}")


def run_session(spark: SparkResource, settings: Settings) -> Any:
    """The run's Spark session, pointed at these settings' catalog (built once per run worker)."""
    from pyspark.sql import SparkSession

    from movesmart_dagster.spark_session import use_catalog

    active = SparkSession.getActiveSession()
    if active is None:
        return spark.session("movesmart-maintenance")
    use_catalog(active, settings)
    return active


def compaction_asset(partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=COMPACTION_KEY,
        deps=list(TABLE_KEYS.values()),
        partitions_def=partitions,
        group_name=GROUP_MAINTENANCE,
        pool=MAINTENANCE_POOL,
        kinds={"spark", "iceberg"},
        description="One closed day of every table rewritten into files of MOVESMART_TARGET_FILE_BYTES "
        "(Iceberg's rewrite_data_files); files and bytes per table before and after.",
    )
    def table_compaction(context: dg.AssetExecutionContext, spark: SparkResource) -> dg.MaterializeResult:
        settings = spark.settings()
        day = date.fromisoformat(context.partition_key)
        grace = partitions_lib.late_grace(settings)
        if not partitions_lib.day_closed(day, datetime.now(UTC), grace):
            closes = partitions_lib.closes_at(day, grace)
            raise dg.Failure(
                description=f"{day} is not closed yet: it closes at {closes:%Y-%m-%d %H:%M} UTC, "
                f"{grace} after its end (late records may still arrive)"
            )
        session = run_session(spark, settings)
        done = [maintenance.compact_partition(session, settings, table, day) for table in ALL_TABLES]
        return dg.MaterializeResult(
            metadata={
                **compaction_totals(context, done),
                "target_file_bytes": settings.target_file_bytes,
                "tables": dg.MetadataValue.md(f"**{day}**\n\n" + compaction_markdown(done)),
                "chart": dg.MetadataValue.md(compaction_chart(done, day.isoformat())),
            }
        )

    return table_compaction


def files_fit_size_check(table: str, partitions: dg.DailyPartitionsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=COMPACTION_KEY,
        name=check_name(table),
        partitions_def=partitions,
        description=f"{table}'s day holds at most ceil(bytes / MOVESMART_TARGET_FILE_BYTES) + "
        f"{FILE_SLACK} data files (Iceberg metadata of the current snapshot).",
    )
    def _check(context: dg.AssetCheckExecutionContext, catalog: CatalogResource) -> dg.AssetCheckResult:
        settings = catalog.settings()
        day = context.partition_key
        found = day_files(settings, table, date.fromisoformat(day), catalog.load())
        allowed = allowed_files(found.bytes, settings.target_file_bytes)
        return dg.AssetCheckResult(
            passed=found.files <= allowed,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{table} {day}: {found.files} data files for {found.bytes} bytes (at most {allowed})",
            metadata={
                "files": found.files,
                "bytes": found.bytes,
                "allowed_files": allowed,
                "rows": found.rows,
            },
        )

    return _check


def days_to_compact(
    instance: dg.DagsterInstance, partitions: dg.DailyPartitionsDefinition, now: datetime
) -> list[str]:
    """Closed days of the lookback that need a compaction run: yesterday's day once it is closed and
    not compacted yet, and any day a table reported rows for after its last compaction."""
    # the grace is read when a run or tick asks (MOVESMART_LATE_GRACE_MINUTES)
    days = partitions_lib.closed_keys(partitions, now, partitions_lib.late_grace(load_settings()))[
        -LOOKBACK_DAYS:
    ]
    if not days:
        return []

    def latest(key: dg.AssetKey) -> dict[str, float]:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=days), limit=1000
        ).records
        out: dict[str, float] = {}
        for r in records:
            out[r.partition_key] = max(out.get(r.partition_key, 0.0), r.timestamp)
        return out

    compacted = latest(COMPACTION_KEY)
    changed: dict[str, float] = {}
    for key in TABLE_KEYS.values():
        for day, ts in latest(key).items():
            changed[day] = max(changed.get(day, 0.0), ts)
    wanted = {d for d in days if changed.get(d, 0.0) > compacted.get(d, 0.0)}
    if days[-1] not in compacted:  # the newest closed day
        wanted.add(days[-1])
    return sorted(wanted)


def maintenance_schedule(job: Any, partitions: dg.DailyPartitionsDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(
        job=job,
        cron_schedule="45 0 * * *",  # after the grace of yesterday's end and the analytics' 00:30
        execution_timezone="UTC",
        name="table_maintenance_schedule",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Compacts yesterday and any day of the last week that got rows since its compaction.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        now = context.scheduled_execution_time or datetime.now(UTC)
        days = days_to_compact(context.instance, partitions, now)
        if not days:
            yield dg.SkipReason("no closed day changed since its compaction")
        for day in days:
            yield dg.RunRequest(partition_key=day)

    return _schedule


def compaction_definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    asset = compaction_asset(partitions)
    with warnings.catch_warnings():
        # a partitioned asset check is a preview feature of Dagster 1.13, and the one way a check's
        # results show per day in the UI: said here, not on every `dagster` command's stderr
        warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec")
        checks = [files_fit_size_check(t, partitions) for t in ALL_TABLES]
    job = dg.define_asset_job(
        JOB_NAME,
        selection=dg.AssetSelection.assets(asset) | dg.AssetSelection.checks(*checks),
        executor_def=dg.in_process_executor,
        description="Compact one closed day of every table, then check each table's files of that day.",
    )
    return dg.Definitions(
        assets=[asset], asset_checks=checks, jobs=[job], schedules=[maintenance_schedule(job, partitions)]
    )
