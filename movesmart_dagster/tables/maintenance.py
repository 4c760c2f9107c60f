"""Table maintenance: compact small files, expire old snapshots, remove orphan files.

Why: the streaming job appends a few small files per table and day at every micro-batch, and
every append is a snapshot. Left alone, a day's partition becomes hundreds of small files
(every reader opens each one), the metadata keeps every snapshot, and a killed writer leaves
files no snapshot references. This module is the one place that decides how the tables are
kept lean; it changes only when that policy changes. It runs Iceberg's own Spark procedures
(`rewrite_data_files`, `expire_snapshots`, `remove_orphan_files`) on the `movesmart` catalog:
each commits one snapshot through the catalog, so readers and the running job see the table
before or after, never between, and a rewrite conflicting with the job's appends retries or
fails without changing a row (Iceberg validates that the files it replaces are still live).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.tables.catalog import event_time_column, spark_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from movesmart_dagster.settings import Settings

# never delete a file younger than this as an orphan: a running writer's files are
# unreferenced until its commit
MIN_ORPHAN_AGE = timedelta(hours=1)
DEFAULT_RETAIN_LAST = 10


class MaintenanceError(ValueError):
    """A maintenance request that would be unsafe or names nothing; the message says why."""


@dataclass(frozen=True)
class PartitionFiles:
    """Data files and their bytes in one day partition of a table's current snapshot."""

    files: int
    bytes: int


@dataclass(frozen=True)
class Compaction:
    table: str
    day: date | None  # None: the partition of rows without an event time
    before: PartitionFiles
    after: PartitionFiles

    def describe(self) -> str:
        day = self.day.isoformat() if self.day else "null"
        return (
            f"{self.table} {day}: files {self.before.files} -> {self.after.files}, "
            f"bytes {self.before.bytes} -> {self.after.bytes}"
        )


def _ts(value: datetime) -> str:
    """A Spark SQL timestamp literal (the session's time zone is UTC)."""
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def _day_filter(table: str, day: date | None) -> str:
    column = event_time_column(table)
    if day is None:
        return f"{column} IS NULL"
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"{column} >= {_ts(start)} AND {column} < {_ts(start + timedelta(days=1))}"


def _partition_predicate(day: date | None) -> str:
    return "partition.event_day IS NULL" if day is None else f"partition.event_day = DATE '{day.isoformat()}'"


def partition_files(spark: SparkSession, settings: Settings, table: str, day: date | None) -> PartitionFiles:
    """Files and bytes of one day, from the table's `data_files` metadata table."""
    row = spark.sql(
        f"SELECT count(*) AS n, coalesce(sum(file_size_in_bytes), 0) AS b "
        f"FROM {spark_table(settings, table)}.data_files WHERE {_partition_predicate(day)}"
    ).first()
    return PartitionFiles(files=int(row.n), bytes=int(row.b))


def days(spark: SparkSession, settings: Settings, table: str) -> list[date | None]:
    """Every day partition holding data files in the table's current snapshot."""
    rows = spark.sql(
        f"SELECT DISTINCT partition.event_day AS d FROM {spark_table(settings, table)}.data_files"
    ).collect()
    return sorted((r.d for r in rows), key=lambda d: (d is not None, d or date.min))


def compact_partition(spark: SparkSession, settings: Settings, table: str, day: date | None) -> Compaction:
    """Rewrite one day's data files into files of about MOVESMART_TARGET_FILE_BYTES."""
    before = partition_files(spark, settings, table, day)
    if before.files > 1:
        where = _day_filter(table, day).replace("'", "''")
        spark.sql(
            f"CALL movesmart.system.rewrite_data_files("
            f"table => '{spark_table(settings, table)}', "
            f"where => '{where}', "
            f"options => map('target-file-size-bytes', '{settings.target_file_bytes}', "
            f"'min-input-files', '2'))"
        ).collect()
    return Compaction(table, day, before, partition_files(spark, settings, table, day))


def compact(
    spark: SparkSession, settings: Settings, tables: list[str] | None = None, day: date | None = None
) -> list[Compaction]:
    """Compact the given day (or every day) of the given tables (or all six)."""
    done: list[Compaction] = []
    for table in tables or list(ALL_TABLES):
        for d in [day] if day is not None else days(spark, settings, table):
            done.append(compact_partition(spark, settings, table, d))
    return done


def snapshot_count(spark: SparkSession, settings: Settings, table: str) -> int:
    return int(spark.sql(f"SELECT count(*) AS n FROM {spark_table(settings, table)}.snapshots").first().n)


def expire_snapshots(
    spark: SparkSession,
    settings: Settings,
    table: str,
    retain_last: int = DEFAULT_RETAIN_LAST,
    now: datetime | None = None,
) -> tuple[int, int]:
    """Expire snapshots older than MOVESMART_SNAPSHOT_RETENTION, keeping at least the last
    `retain_last`; (snapshots before, after)."""
    if retain_last < 1:
        raise MaintenanceError(f"retain_last must be at least 1 (the current snapshot), not {retain_last}")
    older_than = (now or datetime.now(UTC)) - settings.snapshot_retention
    before = snapshot_count(spark, settings, table)
    spark.sql(
        f"CALL movesmart.system.expire_snapshots(table => '{spark_table(settings, table)}', "
        f"older_than => {_ts(older_than)}, retain_last => {retain_last})"
    ).collect()
    return before, snapshot_count(spark, settings, table)


def remove_orphan_files(
    spark: SparkSession, settings: Settings, table: str, older_than: timedelta, now: datetime | None = None
) -> list[str]:
    """Delete files under the table's location that no snapshot references and that are older
    than `older_than` (at least MIN_ORPHAN_AGE); the deleted files' locations."""
    if older_than < MIN_ORPHAN_AGE:
        raise MaintenanceError(
            f"refusing to remove orphan files younger than {MIN_ORPHAN_AGE} (asked: {older_than}): "
            "a running writer's files are unreferenced until it commits"
        )
    cutoff = (now or datetime.now(UTC)) - older_than
    rows = spark.sql(
        f"CALL movesmart.system.remove_orphan_files("
        f"table => '{spark_table(settings, table)}', older_than => {_ts(cutoff)})"
    ).collect()
    return sorted(r.orphan_file_location for r in rows)
