"""One micro-batch of the streaming job: the `foreachBatch` body.

Why a module of its own: this is the order of work inside a batch — cache it once, write
the tables whose rows the fast path decided while the driver judges the rest (the second
pass, in its own scheduler pool), one append per table side by side, then the progress
report — and it changes with that choreography, not with the query's lifecycle
(`query.py`), the appends' exactly-once rule (`commits.py`) or the report (`batch_report.py`).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from movesmart_dagster.schemas import ALL_TABLES, QUARANTINE_TABLE, RECORDS, TABLES
from movesmart_dagster.streaming.batch_report import batch_stats, build_progress, publish
from movesmart_dagster.streaming.commits import TableCommits
from movesmart_dagster.streaming.joblog import log
from movesmart_dagster.streaming.projection import table_projection
from movesmart_dagster.streaming.validation.exact_path import reroute_exact, with_exact
from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST, unpack

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from movesmart_dagster.streaming.query import StreamJob

TABLE_TOPICS = {r.table: r.topic for r in RECORDS}

# a table's rows in a batch up to which one task writes them: one data file per day and append
# instead of one per Kafka partition (a short trigger makes many small batches; compaction joins
# files only once a day is closed), while a catch-up batch keeps every core writing
SMALL_APPEND_ROWS = 200_000


class MicroBatch:
    """One `foreachBatch` call: validate, append each table once, report (see the module)."""

    def __init__(self, job: StreamJob, batch_id: int) -> None:
        self.job = job
        self.batch_id = batch_id
        self.phases: dict[str, float] = {}  # seconds per phase, for the batch's log line

    def run(self, batch: DataFrame) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        job, batch_id = self.job, self.batch_id
        t0 = time.monotonic()
        started = datetime.now(UTC)
        spark = job.spark
        query_id = job.query_id()
        job.fault.hit("start", batch_id, spark)
        commits = TableCommits(job, query_id, batch_id, fresh=job.finished_batch == batch_id - 1)

        batch.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            routed = unpack(batch)
            stats = batch_stats(routed)
            self.phases["read"] = time.monotonic() - t0
            exact_topics = {r["kafka_topic"] for r in stats if r["_dest"] == EXACT_DEST}
            n_exact = sum(r["n"] for r in stats if r["_dest"] == EXACT_DEST)

            def rows_of(rows: DataFrame, table: str) -> DataFrame:
                rows = rows.where(F.col("_dest") == table)
                if table in TABLE_TOPICS:
                    # every cached partition holds one topic, and the cache keeps each column's
                    # min/max: this predicate skips the other topics' partitions unread
                    rows = rows.where(F.col("kafka_topic") == TABLE_TOPICS[table])
                return rows.selectExpr(*table_projection(table, started))

            def write(table: str, rows: DataFrame) -> Future[None]:
                """The table's append in the pool; up to SMALL_APPEND_ROWS rows, by one task."""
                n = sum(r["n"] for r in stats if r["_dest"] == table)
                return pool.submit(
                    commits.append, table, rows.coalesce(1) if n <= SMALL_APPEND_ROWS else rows
                )

            # one append per table, the tables side by side: independent Spark jobs over the
            # cached batch, and independent catalog commits. A table whose topic had no rows
            # for the exact rules is written while the driver judges the others' rows.
            with ThreadPoolExecutor(max_workers=len(ALL_TABLES)) as pool:
                fast_tables = sorted(
                    {r["_dest"] for r in stats} - {EXACT_DEST, QUARANTINE_TABLE} - exact_topics
                )
                writes = [write(t, rows_of(routed, t)) for t in fast_tables]
                commits.watch_mid_write()
                quarantined = routed
                if n_exact:
                    exact = self._second_pass(routed, n_exact)
                    exact_stats = batch_stats(exact)
                    stats = [r for r in stats if r["_dest"] != EXACT_DEST] + exact_stats
                    waiting = {r["_dest"] for r in stats} & set(TABLES) & exact_topics
                    for t in sorted(waiting):
                        writes.append(write(t, rows_of(routed, t).unionAll(rows_of(exact, t))))
                    quarantined = with_exact(routed, exact)
                tables = sorted({r["_dest"] for r in stats})
                if QUARANTINE_TABLE in tables:
                    writes.append(write(QUARANTINE_TABLE, rows_of(quarantined, QUARANTINE_TABLE)))
                for future in writes:
                    future.result()
        finally:
            commits.done_writing()
            batch.unpersist()
        self.phases["commit"] = time.monotonic() - t0 - sum(self.phases.values())
        job.fault.hit("after_commit", batch_id, spark)

        report = build_progress(batch_id, query_id, started, t0, stats, commits.files)
        publish(report, job.settings, self.phases, commits)

    def _second_pass(self, routed: DataFrame, n_exact: int) -> DataFrame:
        """The rows the fast path could not vouch for (few, as a rule), judged by the exact
        rules and materialized with their plan cut off, so the writes plan a small union."""
        t0 = time.monotonic()
        job = self.job
        sc = job.spark.sparkContext
        # its own scheduler pool: its small jobs share the cores with the running writes
        # instead of queueing behind them (the quarantine write waits for this pass)
        sc.setLocalProperty("spark.scheduler.pool", "second_pass")
        try:
            exact = (
                reroute_exact(
                    routed,
                    job.settings.max_message_bytes,
                    job.time_rule,
                    job.settings.driver_validation_max_rows,
                )
                .coalesce(max(1, min(sc.defaultParallelism, n_exact // 100_000)))
                .localCheckpoint(eager=True)
            )
        finally:
            sc.setLocalProperty("spark.scheduler.pool", None)
        log(
            f"batch {self.batch_id}: {n_exact} record(s) judged by the exact rules in {time.monotonic() - t0:.1f}s "
            + "(contract.validate on the driver)"
        )
        return exact
