"""Snapshot expiry and orphan removal of every table: one unpartitioned asset, run hourly.

Why table-wide: both act on a table's history, not on a day — expiry drops snapshots older than
MOVESMART_SNAPSHOT_RETENTION (keeping the newest `retain_last`) and the files only they referenced,
orphan removal deletes files no snapshot references (a killed writer's) once they are old enough
that no running writer can still commit them. The safety limits are the library's
(`tables/maintenance.py`); the run's config can only tighten what it keeps, never go below them.
"""

from datetime import timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from movesmart_dagster.defs.keys import GROUP_MAINTENANCE, MAINTENANCE_POOL, SNAPSHOT_EXPIRY_KEY, TABLE_KEYS
from movesmart_dagster.defs.maintenance.compaction import run_session
from movesmart_dagster.defs.maintenance.scheduled import scheduled_asset
from movesmart_dagster.defs.resources import SparkResource
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.tables import maintenance

JOB_NAME = "table_snapshots_job"


class SnapshotExpiryConfig(dg.Config):
    retain_last: int = Field(
        maintenance.DEFAULT_RETAIN_LAST, ge=1, description="always keep this many newest snapshots"
    )
    orphan_min_age_hours: float = Field(
        72.0, ge=maintenance.MIN_ORPHAN_AGE.total_seconds() / 3600, description="only older orphan files"
    )


@dg.asset(
    key=SNAPSHOT_EXPIRY_KEY,
    deps=list(TABLE_KEYS.values()),
    group_name=GROUP_MAINTENANCE,
    pool=MAINTENANCE_POOL,
    kinds={"spark", "iceberg"},
    description="Snapshots older than MOVESMART_SNAPSHOT_RETENTION expired and orphan files removed, "
    "every table; snapshots before and after and orphans removed, per table.",
)
def table_snapshots(
    context: dg.AssetExecutionContext, config: SnapshotExpiryConfig, spark: SparkResource
) -> dg.MaterializeResult:
    settings = spark.settings()
    session = run_session(spark, settings)
    rows = []
    for table in ALL_TABLES:
        before, after = maintenance.expire_snapshots(session, settings, table, config.retain_last)
        removed = maintenance.remove_orphan_files(
            session, settings, table, timedelta(hours=config.orphan_min_age_hours)
        )
        rows.append((table, before, after, len(removed)))
        if removed:
            context.log.info(f"{table}: removed {len(removed)} orphan files")
    table_md = "\n".join(
        [
            "| table | snapshots before | snapshots after | orphan files removed |",
            "|---|---|---|---|",
            *(f"| {t} | {b} | {a} | {o} |" for t, b, a, o in rows),
        ]
    )
    metadata: dict[str, Any] = {
        "snapshots_before": sum(r[1] for r in rows),
        "snapshots_after": sum(r[2] for r in rows),
        "orphan_files_removed": sum(r[3] for r in rows),
        "tables": dg.MetadataValue.md(table_md),
    }
    return dg.MaterializeResult(metadata=metadata)


def snapshot_definitions() -> dg.Definitions:
    return scheduled_asset(
        table_snapshots,
        job_name=JOB_NAME,
        job_description="Expire old snapshots and remove orphan files of every table.",
        schedule_name="table_snapshots_schedule",
        # hourly: the stream adds a snapshot per table and trigger, each kept in the metadata every
        # commit rewrites; 01:15 also frees the files the compaction of 00:45 replaced
        cron="15 * * * *",
        schedule_description="Hourly snapshot expiry and orphan removal of every table.",
    )
