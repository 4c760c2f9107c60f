"""Each micro-batch's progress report: its stats, its progress line, its log line.

Why a module of its own: what a batch reports (rows, quarantined rows, offset ranges, days,
newest timestamps and lags per table; see `progress.py` for the line's format) is read by
the supervising Dagster run, the CLI, tests and benches, and changes with what they need,
not with how the batch is written. One aggregate over the cached batch (`batch_stats`)
feeds both the routing of the batch and this report.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, QUARANTINE_TABLE, TABLES
from movesmart_dagster.streaming import progress
from movesmart_dagster.streaming.joblog import log

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from movesmart_dagster.settings import Settings
    from movesmart_dagster.streaming.commits import TableCommits


def batch_stats(routed: DataFrame) -> list[Any]:
    """Per destination, topic, partition and day: rows, offset range, newest timestamps."""
    from pyspark.sql import functions as F

    return (
        routed.groupBy("_dest", "kafka_topic", "kafka_partition", PARTITION_COLUMN)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("kafka_offset").alias("lo"),
            F.max("kafka_offset").alias("hi"),
            F.max("event_ts").alias("newest_event"),
            F.max("kafka_timestamp").alias("newest_kafka"),
        )
        .collect()
    )


def iso_utc(ts: datetime | None) -> str | None:
    """A UTC ISO 8601 text ending in Z (naive timestamps are taken as UTC)."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_progress(
    batch_id: int,
    query_id: str | None,
    started: datetime,
    t0: float,
    stats: list[Any],
    files: dict[str, int],
) -> progress.BatchProgress:
    """The batch's progress line from its stats (`batch_stats`) and the files each append
    added; `t0` is the batch's start on the monotonic clock."""
    now = datetime.now(UTC)
    tables: dict[str, progress.TableProgress] = {t: progress.TableProgress() for t in ALL_TABLES}
    newest_event: dict[str, datetime] = {}
    newest_kafka: dict[str, datetime] = {}
    parts: dict[str, set[str]] = {t: set() for t in ALL_TABLES}
    day_newest: dict[tuple[str, str], datetime] = {}
    input_rows = 0
    for r in stats:
        table = r["kafka_topic"]  # tables are named like their topics
        dest = r["_dest"]
        n = int(r["n"])
        input_rows += n
        tp = tables[table]
        if dest == QUARANTINE_TABLE:
            tp.quarantined += n
            tables[QUARANTINE_TABLE].rows += n
        else:
            tp.rows += n
        rng = tp.offsets.setdefault(str(r["kafka_partition"]), [int(r["lo"]), int(r["hi"]) + 1])
        rng[0], rng[1] = min(rng[0], int(r["lo"])), max(rng[1], int(r["hi"]) + 1)
        if r[PARTITION_COLUMN] is not None:
            day_key = r[PARTITION_COLUMN].isoformat()
            parts[dest].add(day_key)
            day = tables[dest].days.setdefault(day_key, progress.DayProgress())
            day.rows += n
            topic_ranges = day.offsets.setdefault(table, {})
            drng = topic_ranges.setdefault(str(r["kafka_partition"]), [int(r["lo"]), int(r["hi"]) + 1])
            drng[0], drng[1] = min(drng[0], int(r["lo"])), max(drng[1], int(r["hi"]) + 1)
            # a day's watermark: its newest event time (quarantine's days are Kafka-time days)
            newest = r["newest_kafka"] if dest == QUARANTINE_TABLE else r["newest_event"]
            if newest is not None:
                newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest
                if (dest, day_key) not in day_newest or newest > day_newest[dest, day_key]:
                    day_newest[dest, day_key] = newest
                    day.newest_event_at = iso_utc(newest)
        for key, mapping, targets in (
            ("newest_event", newest_event, (table,) if dest != QUARANTINE_TABLE else ()),
            ("newest_kafka", newest_kafka, (table, dest)),
        ):
            value = r[key]
            if value is None:
                continue
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
            for t in targets:
                if t not in mapping or value > mapping[t]:
                    mapping[t] = value
    for t, tp in tables.items():
        tp.partitions = sorted(parts[t])
        tp.files = files.get(t, 0)
        if t in newest_event:
            tp.newest_event_at = iso_utc(newest_event[t])
            tp.event_lag_s = round((now - newest_event[t]).total_seconds(), 3)
        if t in newest_kafka:
            tp.newest_kafka_at = iso_utc(newest_kafka[t])
            tp.freshness_lag_s = round((now - newest_kafka[t]).total_seconds(), 3)
    return progress.BatchProgress(
        batch_id=batch_id,
        committed_at=iso_utc(now) or "",
        duration_ms=int((time.monotonic() - t0) * 1000),
        tables=tables,
        query_id=query_id,
        started_at=iso_utc(started),
        input_rows=input_rows,
    )


def publish(
    report: progress.BatchProgress, settings: Settings, phases: dict[str, float], commits: TableCommits
) -> None:
    """The batch's line in the progress log (once per query and batch: a re-run batch whose
    line was written before the crash is not reported again) and its summary in the job log."""
    log_path = settings.progress_log
    last = progress.last(log_path)
    if not (last and last.query_id == report.query_id and last.batch_id == report.batch_id):
        progress.append(log_path, report, settings.progress_log_max_bytes)
    rows = sum(t.rows for n, t in report.tables.items() if n in TABLES)
    quarantined = report.tables[QUARANTINE_TABLE].rows
    skipped = f", {len(commits.skipped)} table(s) already held it" if commits.skipped else ""
    log(
        f"batch {report.batch_id} committed: {rows} rows, {quarantined} quarantined, "
        f"{sum(commits.files.values())} files, {report.duration_ms} ms ("
        + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
        + ")"
        + (f", appends {commits.timing()}" if commits.seconds else "")
        + skipped
    )
