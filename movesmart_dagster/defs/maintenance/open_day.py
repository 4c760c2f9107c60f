"""Compaction of the days still open, every hour: one unpartitioned asset and its schedule.

Why: at the stream's default trigger a table's open day gains a data file per micro-batch
(~13 files a batch over the six tables, ~21,000 an hour in the short soak), and the closed-day
compaction (`compaction.py`) reaches a day only after it closes. Until then every reader of
today — the checks, `movesmart query`, Athena — opened each small file. An hourly rewrite keeps
today at a few files; the day's own compaction still runs once it closes (late records).

Why not the daily-partitioned compaction asset: that asset says "this closed day is compacted",
the fact the schedule and the file-size checks reason about; an hourly rewrite of a day that is
still growing is not that fact. This asset's materializations say what each hour's rewrite did,
per open day and table, with a chart.

Safe beside the stream: Iceberg's rewrite replaces files an append never touches, and each
commits through the catalog (`tables/maintenance.py`); test_maintenance proves compaction during
appends loses and doubles nothing.
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from movesmart_dagster.defs import partitions as partitions_lib
from movesmart_dagster.defs.keys import (
    GROUP_MAINTENANCE,
    MAINTENANCE_POOL,
    OPEN_DAY_COMPACTION_KEY,
    TABLE_KEYS,
)
from movesmart_dagster.defs.maintenance.compaction import (
    compaction_chart,
    compaction_markdown,
    compaction_totals,
    run_session,
)
from movesmart_dagster.defs.maintenance.scheduled import scheduled_asset
from movesmart_dagster.defs.resources import SparkResource
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.tables import maintenance

JOB_NAME = "open_day_compaction_job"


def open_days(now: datetime, grace: timedelta) -> list[date]:
    """The days not closed at `now`: yesterday during its grace, and today."""
    today = now.astimezone(UTC).date()
    yesterday = today - timedelta(days=1)
    return [d for d in (yesterday, today) if not partitions_lib.day_closed(d, now, grace)]


@dg.asset(
    key=OPEN_DAY_COMPACTION_KEY,
    deps=list(TABLE_KEYS.values()),
    group_name=GROUP_MAINTENANCE,
    pool=MAINTENANCE_POOL,
    kinds={"spark", "iceberg"},
    description="The days not yet closed (today, and yesterday within MOVESMART_LATE_GRACE_MINUTES) "
    "of every table rewritten into files of MOVESMART_TARGET_FILE_BYTES, while the stream appends; "
    "files and bytes per day and table before and after.",
)
def open_day_compaction(context: dg.AssetExecutionContext, spark: SparkResource) -> dg.MaterializeResult:
    settings = spark.settings()
    days = open_days(datetime.now(UTC), partitions_lib.late_grace(settings))
    session = run_session(spark, settings)
    done = [
        maintenance.compact_partition(session, settings, table, day) for day in days for table in ALL_TABLES
    ]
    metadata: dict[str, Any] = {
        "days": ", ".join(d.isoformat() for d in days),
        **compaction_totals(context, done),
    }
    for day in days:
        of_day = [c for c in done if c.day == day]
        metadata[f"tables_{day.isoformat()}"] = dg.MetadataValue.md(
            f"**{day}**\n\n" + compaction_markdown(of_day)
        )
    metadata["chart"] = dg.MetadataValue.md(
        compaction_chart([c for c in done if c.day == days[-1]], days[-1].isoformat())
    )
    return dg.MaterializeResult(metadata=metadata)


def open_day_definitions() -> dg.Definitions:
    return scheduled_asset(
        open_day_compaction,
        job_name=JOB_NAME,
        job_description="Compact the days still open of every table while the stream appends to them.",
        schedule_name="open_day_compaction_schedule",
        # :05, before the snapshot expiry of :15 and clear of the analytics (00:30) and the
        # closed-day compaction (00:45)
        cron="5 * * * *",
        schedule_description="Hourly compaction of today (and of yesterday until it closes).",
    )
