"""The Spark Structured Streaming job: Kafka -> validated, day-partitioned Iceberg tables.

Run it as `movesmart stream`, `python -m movesmart_dagster.streaming.job` or
`spark-submit --jars <.jars/spark/*> movesmart_dagster/streaming/job.py` (same flags).

Design, and why:
- ONE streaming query, one checkpoint, one Kafka source subscribed to the five topics
  (one offset fetch per trigger, one scan). A failure anywhere fails the query and the
  process (exit 1) — the seed ran five queries and waited on the last, so a dead query
  went unnoticed.
- Validation at the edge (`validation.py`), in two passes. In the streaming plan, a Java
  UDF (`io.movesmart.spark.FastContract`, jvm/spark-contract) reads each record once and
  returns its typed values when it is plainly valid; everything else (broken, odd or
  merely unusual) is marked `_exact`. In `foreachBatch`, those rows are judged by the
  contract itself, `contract.validate` on the driver, in chunks of at most
  `MOVESMART_DRIVER_VALIDATION_MAX_ROWS` — while the tables whose topic had no such rows
  are already being written (the second pass has its own scheduler pool, so its small jobs
  do not queue behind the writes); a table with rows of both passes is one append of both.
  A test runs one corpus through both passes and the reference. Every Kafka
  record becomes exactly one row: in its table (typed columns + lineage `kafka_topic,
  kafka_partition, kafka_offset, kafka_timestamp, ingested_at`) or in `quarantine` (the
  bytes as received and a reason `code: detail`). Valid rows are partitioned by the
  event's UTC date, quarantined rows by the date of their Kafka timestamp (deterministic
  on a re-run).
- Each batch is read from Kafka once and cached, narrow: the fast path's values stay one
  struct per table until after the cache (`validation.unpack`), ~110 bytes per record.
  Every cached partition holds one topic partition, so each table's write skips the
  other topics' partitions by the cache's column statistics. Bigger batches pay the
  per-batch planning less often: the default cap (`DEFAULT_MAX_OFFSETS`) is sized to
  the cache, not to the trigger.
- `foreachBatch` commits each batch to each table as ONE Iceberg append (`TableCommits`),
  the tables side by side in threads (a commit through the catalog costs ~0.3 s; six in a
  row would add seconds to every batch). Each append carries the streaming query id and
  the batch id as snapshot summary properties (`movesmart.query-id`, `movesmart.batch-id`).
  Spark re-runs a batch it did not record as committed with the same offsets, so after a
  crash the re-run looks at each table's snapshot history and skips the tables that
  already hold (query id, batch id): every Kafka record lands exactly once. Files an
  interrupted attempt wrote belong to no snapshot: no reader sees them.
- Progress: after every table's commit, one JSON line per batch in `settings.progress_log`
  (`progress.py`), which the Dagster run supervising the job tails.
- Operation: `--trigger-interval` (default 10 seconds), `--max-offsets-per-trigger`
  (all topics together), `--available-now` drains what Kafka holds and exits 0;
  SIGTERM/SIGINT stop the query between batches (a batch caught mid-way is re-run on the
  next start, harmlessly). A new checkpoint starts from the earliest offsets.
- Fault injection for tests: `MOVESMART_FAULT_POINT=<point>:batch=<id>` kills the driver's
  JVM and the Python process with SIGKILL at `start`, `mid_write` (a write task's files are
  on disk, no table committed yet), `after_first_table` (one table committed, the others
  under way) or `after_commit` (every table committed, before Spark's own commit) of that
  batch (or of every batch with `batch=*`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from movesmart_dagster.contract import EventTimeRule
from movesmart_dagster.schemas import (
    ALL_TABLES,
    PARTITION_COLUMN,
    QUARANTINE_TABLE,
    RECORDS,
    TABLES,
    TOPICS,
)
from movesmart_dagster.settings import Settings, SettingsError, load_settings
from movesmart_dagster.streaming import progress
from movesmart_dagster.streaming.validation import (
    EXACT_DEST,
    register_fast_contract,
    reroute_exact,
    route_fast,
    table_projection,
    unpack,
    with_exact,
)
from movesmart_dagster.tables.catalog import CatalogError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

QUERY_NAME = "movesmart-stream"
TABLE_TOPICS = {r.table: r.topic for r in RECORDS}
FAULT_ENV = "MOVESMART_FAULT_POINT"
FAULT_POINTS = ("start", "mid_write", "after_first_table", "after_commit")
# snapshot summary properties of every append: what makes a re-run batch recognisable
QUERY_ID_PROPERTY = "movesmart.query-id"
BATCH_ID_PROPERTY = "movesmart.batch-id"
APPEND_JOB_GROUP = "movesmart-append"

# Spark settings the job adds to the shared ones (spark_session.spark_conf).
JOB_SPARK_CONF: dict[str, str] = {
    # a throwing expression would fail the batch forever (a poison message); the rules use
    # try_* functions, and this makes any cast we missed return NULL instead
    "spark.sql.ansi.enabled": "false",
    "spark.sql.streaming.metricsEnabled": "false",
    # jobs of different scheduler pools share the cores (the second validation pass runs
    # beside the writes of the first pass's rows); within a pool, first come first served
    "spark.scheduler.mode": "FAIR",
    # the batch is cached once and read by six writes: plain columns build faster
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
}
# a task reads a known offset range: when its consumer prefetches past the range end, the
# broker would hold that fetch for the default 500 ms (reading 3M records: 8.6 s -> 3.0 s)
KAFKA_READ_OPTIONS: dict[str, str] = {"kafka.fetch.max.wait.ms": "10"}
# Records per micro-batch (all topics): bounds the cached batch, ~110 bytes per record,
# ~0.55 GB at 5M in the default 2 GB driver (5M in one batch: peak RSS 2.4 GB). A catch-up
# in big batches pays the per-batch planning and task start-up less often: 3M records took
# 39.6 s in 1M batches, 29.4 s in one (2 cores).
DEFAULT_MAX_OFFSETS = 5_000_000
# "OSError: ...", "java.io.IOException: ...": the line of an error in a traceback or cause chain
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.$]*(Error|Exception|Exit|Interrupt): ")
_INTERVAL = re.compile(r"^\s*\d+\s*(milliseconds?|ms|seconds?|s|minutes?|min|hours?|h)\s*$", re.IGNORECASE)


def check_interval(text: str) -> str:
    """A trigger interval Spark understands, e.g. '10 seconds', '500 milliseconds', '1 minute'."""
    if not _INTERVAL.match(text):
        raise SettingsError(f"invalid --trigger-interval {text!r}: expected e.g. '10 seconds' or '1 minute'")
    return text.strip()


@dataclass(frozen=True)
class JobOptions:
    trigger_interval: str = "10 seconds"
    max_offsets_per_trigger: int | None = DEFAULT_MAX_OFFSETS
    available_now: bool = False
    checkpoint: str | None = None  # default: <checkpoint_root>/stream
    app_name: str = "movesmart-stream"


def log(msg: str) -> None:
    print(f"[movesmart stream] {msg}", file=sys.stderr, flush=True)


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Fault:
    """The env-var fault-injection hook: SIGKILL the driver JVM and this process."""

    def __init__(self, spec: str | None) -> None:
        self.point: str | None = None
        self.batch: int | None = None
        self.any_batch = False
        if not spec:
            return
        point, _, cond = spec.partition(":")
        if point not in FAULT_POINTS:
            raise SettingsError(f"invalid setting {FAULT_ENV}={spec!r}: point must be one of {FAULT_POINTS}")
        self.point = point
        value = cond.removeprefix("batch=") if cond else "*"
        if value == "*":
            self.any_batch = True
        else:
            self.batch = int(value)

    def hit(self, point: str, batch_id: int, spark: SparkSession) -> None:
        if self.point != point or not (self.any_batch or self.batch == batch_id):
            return
        log(f"fault injection: kill -9 at {point} of batch {batch_id}")
        with contextlib.suppress(Exception):
            jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[attr-defined]
            os.kill(jvm_pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


class StreamJob:
    """The query, its foreachBatch and the process lifecycle around it."""

    def __init__(self, settings: Settings, options: JobOptions, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self.options = options
        self.checkpoint = options.checkpoint or f"{settings.checkpoint_root}/stream"
        self.time_rule = EventTimeRule.from_settings(settings)
        self.fault = Fault(os.environ.get(FAULT_ENV))
        self._spark = spark
        self._stop = threading.Event()
        self._catalog: Any = None
        self._query_id: str | None = None
        self.batches = 0
        self.phases: dict[str, float] = {}

    # --- Spark -----------------------------------------------------------------------------
    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from movesmart_dagster.spark_session import build_spark

            self._spark = build_spark(self.settings, self.options.app_name, extra=JOB_SPARK_CONF)
        return self._spark

    def source(self) -> DataFrame:
        """The five topics through one Kafka source: one offset fetch per trigger, one scan."""
        reader = (
            self.spark.readStream.format("kafka")
            .options(**KAFKA_READ_OPTIONS)
            .options(**self.settings.spark_kafka_options())
            .option("subscribe", ",".join(TOPICS))
            .option("startingOffsets", "earliest")
            .option("kafka.max.partition.fetch.bytes", str(8 << 20))
            .option("includeHeaders", "false")
        )
        if self.options.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(self.options.max_offsets_per_trigger))
        return reader.load()

    def routed_stream(self) -> DataFrame:
        register_fast_contract(self.spark, self.time_rule)
        return route_fast(self.source(), self.settings.max_message_bytes)

    def query_id(self) -> str:
        """The streaming query's id: kept in the checkpoint, the same across restarts."""
        if self._query_id is None:
            active = [q for q in self.spark.streams.active if q.name == QUERY_NAME]
            if not active:
                raise RuntimeError(f"streaming query {QUERY_NAME} is not active")
            self._query_id = str(active[0].id)
        return self._query_id

    # --- one micro-batch -------------------------------------------------------------------
    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        t0 = time.monotonic()
        self.phases = {}
        started = datetime.now(UTC)
        spark = self.spark
        query_id = self.query_id()
        self.fault.hit("start", batch_id, spark)
        commits = TableCommits(self, query_id, batch_id)

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

            # one append per table, the tables side by side: independent Spark jobs over the
            # cached batch, and independent catalog commits. A table whose topic had no rows
            # for the exact rules is written while the driver judges the others' rows.
            with ThreadPoolExecutor(max_workers=len(ALL_TABLES)) as pool:
                fast_tables = sorted(
                    {r["_dest"] for r in stats} - {EXACT_DEST, QUARANTINE_TABLE} - exact_topics
                )
                writes = [pool.submit(commits.append, t, rows_of(routed, t)) for t in fast_tables]
                commits.watch_mid_write()
                quarantined = routed
                if n_exact:
                    exact = self._second_pass(routed, n_exact, batch_id)
                    exact_stats = batch_stats(exact)
                    stats = [r for r in stats if r["_dest"] != EXACT_DEST] + exact_stats
                    waiting = {r["_dest"] for r in stats} & set(TABLES) & exact_topics
                    for t in sorted(waiting):
                        writes.append(
                            pool.submit(commits.append, t, rows_of(routed, t).unionAll(rows_of(exact, t)))
                        )
                    quarantined = with_exact(routed, exact)
                tables = sorted({r["_dest"] for r in stats})
                if QUARANTINE_TABLE in tables:
                    writes.append(
                        pool.submit(commits.append, QUARANTINE_TABLE, rows_of(quarantined, QUARANTINE_TABLE))
                    )
                for future in writes:
                    future.result()
        finally:
            commits.done_writing()
            batch.unpersist()
        self.phases["commit"] = time.monotonic() - t0 - sum(self.phases.values())
        self.fault.hit("after_commit", batch_id, spark)

        report = self._progress(batch_id, started, t0, stats, commits.files)
        self._publish(report, commits)
        self.batches += 1

    def _second_pass(self, routed: DataFrame, n_exact: int, batch_id: int) -> DataFrame:
        """The rows the fast path could not vouch for (few, as a rule), judged by the exact
        rules and materialized with their plan cut off, so the writes plan a small union."""
        t0 = time.monotonic()
        sc = self.spark.sparkContext
        # its own scheduler pool: its small jobs share the cores with the running writes
        # instead of queueing behind them (the quarantine write waits for this pass)
        sc.setLocalProperty("spark.scheduler.pool", "second_pass")
        try:
            exact = (
                reroute_exact(
                    routed,
                    self.settings.max_message_bytes,
                    self.time_rule,
                    self.settings.driver_validation_max_rows,
                )
                .coalesce(max(1, min(sc.defaultParallelism, n_exact // 100_000)))
                .localCheckpoint(eager=True)
            )
        finally:
            sc.setLocalProperty("spark.scheduler.pool", None)
        log(
            f"batch {batch_id}: {n_exact} record(s) judged by the exact rules in {time.monotonic() - t0:.1f}s "
            + "(contract.validate on the driver)"
        )
        return exact

    def _progress(
        self, batch_id: int, started: datetime, t0: float, stats: list[Any], files: dict[str, int]
    ) -> progress.BatchProgress:
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
                        day.newest_event_at = _iso(newest)
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
                tp.newest_event_at = _iso(newest_event[t])
                tp.event_lag_s = round((now - newest_event[t]).total_seconds(), 3)
            if t in newest_kafka:
                tp.newest_kafka_at = _iso(newest_kafka[t])
                tp.freshness_lag_s = round((now - newest_kafka[t]).total_seconds(), 3)
        return progress.BatchProgress(
            batch_id=batch_id,
            committed_at=_iso(now) or "",
            duration_ms=int((time.monotonic() - t0) * 1000),
            tables=tables,
            query_id=self._query_id,
            started_at=_iso(started),
            input_rows=input_rows,
        )

    def _publish(self, report: progress.BatchProgress, commits: TableCommits) -> None:
        log_path = self.settings.progress_log
        last = progress.last(log_path)
        if not (last and last.query_id == report.query_id and last.batch_id == report.batch_id):
            progress.append(log_path, report)
        rows = sum(t.rows for n, t in report.tables.items() if n in TABLES)
        quarantined = report.tables[QUARANTINE_TABLE].rows
        skipped = f", {len(commits.skipped)} table(s) already held it" if commits.skipped else ""
        log(
            f"batch {report.batch_id} committed: {rows} rows, {quarantined} quarantined, "
            f"{report.duration_ms} ms ("
            + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items())
            + ")"
            + (f", appends {commits.timing()}" if commits.seconds else "")
            + skipped
        )

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def catalog(self) -> Any:
        """The pyiceberg view of the catalog (snapshot histories for the re-run check)."""
        if self._catalog is None:
            from movesmart_dagster.tables.catalog import load_catalog

            self._catalog = load_catalog(self.settings)
        return self._catalog

    def ensure_tables(self) -> None:
        """The six tables exist and carry every field of schemas.py (before the first batch)."""
        from movesmart_dagster.tables.catalog import ensure_tables

        changed = {
            t: state
            for t, state in ensure_tables(self.settings, self.catalog).items()
            if state != "unchanged"
        }
        if changed:
            log("tables: " + ", ".join(f"{t} {state}" for t, state in changed.items()))

    def start(self) -> StreamingQuery:
        writer = (
            self.routed_stream()
            .writeStream.queryName(QUERY_NAME)
            .option("checkpointLocation", self.checkpoint)
            .foreachBatch(self.process_batch)
        )
        if self.options.available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=self.options.trigger_interval)
        return writer.start()

    def request_stop(self, *_: object) -> None:
        if not self._stop.is_set():
            log("stop requested: finishing the current batch")
        self._stop.set()

    def run(self) -> int:
        """Run until drained (--available-now), stopped (SIGTERM/SIGINT) or failed; exit status."""
        from pyspark.errors import StreamingQueryException

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in previous:
                signal.signal(sig, self.request_stop)
        query = None
        try:
            log(
                f"warehouse {self.settings.warehouse}, checkpoint {self.checkpoint}, "
                f"master {self.settings.spark_master}, "
                + (
                    "available-now"
                    if self.options.available_now
                    else f"every {self.options.trigger_interval}"
                )
            )
            try:
                self.ensure_tables()
            except CatalogError as err:
                log(f"cannot start: {err}")
                return 1
            query = self.start()
            while query.isActive:
                if self._stop.is_set():
                    self._stop_between_batches(query)
                    break
                # a failed query raises here: told below in one line, not as a traceback
                with contextlib.suppress(StreamingQueryException):
                    query.awaitTermination(0.5)
            error = query.exception()
            if error is not None:
                log(f"query failed: {failure_summary(error, self.settings, self.checkpoint)}")
                return 1
            log(f"stopped after {self.batches} batch(es)")
            return 0
        finally:
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _stop_between_batches(self, query: StreamingQuery, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while query.isActive and time.monotonic() < deadline:
            status = query.status
            if not status.get("isTriggerActive", False):
                break
            time.sleep(0.2)
        query.stop()


class TableCommits:
    """The appends of one micro-batch: at most one per table, idempotent on (query id, batch id).

    Why it is exactly once: Spark re-runs a batch it has not recorded as committed with the
    same offsets and the same batch id. Before its append, each table's snapshot history is
    searched for a snapshot carrying this query id and batch id; a table that holds one
    committed this batch's rows in a failed attempt and is skipped. The search walks back
    from the current snapshot and stops at an older batch of the same query (batches commit
    in order), so it reads a few snapshots, not the whole history.
    """

    def __init__(self, job: StreamJob, query_id: str, batch_id: int) -> None:
        self.job = job
        self.query_id = query_id
        self.batch_id = batch_id
        self.files: dict[str, int] = {}  # data files each append added
        self.seconds: dict[str, float] = {}  # each append's duration
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        self._committed = 0
        self._writing = threading.Event()

    def already_committed(self, table: str) -> bool:
        from movesmart_dagster.tables.catalog import load_table

        iceberg = load_table(self.job.settings, table, self.job.catalog)
        snapshot = iceberg.current_snapshot()
        while snapshot is not None:
            props = snapshot.summary.additional_properties if snapshot.summary else {}
            if props.get(QUERY_ID_PROPERTY) == self.query_id:
                batch = int(props.get(BATCH_ID_PROPERTY, -1))
                if batch == self.batch_id:
                    return True
                if batch < self.batch_id:
                    return False
            if snapshot.parent_snapshot_id is None:
                return False
            snapshot = iceberg.snapshot_by_id(snapshot.parent_snapshot_id)
        return False

    def append(self, table: str, rows: DataFrame) -> None:
        """One Iceberg append of the table's rows of this batch, unless the table holds it."""
        from movesmart_dagster.tables.catalog import spark_table

        t0 = time.monotonic()
        if self.already_committed(table):
            with self._lock:
                self.skipped.append(table)
            return
        # the append's Spark jobs, by thread (pinned threads: the group is this thread's)
        self.job.spark.sparkContext.setJobGroup(APPEND_JOB_GROUP, f"append {table}")
        (
            rows.writeTo(spark_table(self.job.settings, table))
            .option(f"snapshot-property.{QUERY_ID_PROPERTY}", self.query_id)
            .option(f"snapshot-property.{BATCH_ID_PROPERTY}", str(self.batch_id))
            .append()
        )
        added = self._added_files(table)
        with self._lock:
            self.files[table] = added
            self.seconds[table] = time.monotonic() - t0
            self._committed += 1
            first = self._committed == 1
        if first:
            self.job.fault.hit("after_first_table", self.batch_id, self.job.spark)

    def _added_files(self, table: str) -> int:
        """Data files this batch's append added to the table (its snapshot's summary)."""
        from movesmart_dagster.tables.catalog import load_table

        snapshot = load_table(self.job.settings, table, self.job.catalog).current_snapshot()
        props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
        if props.get(BATCH_ID_PROPERTY) != str(self.batch_id):
            return 0  # another writer committed on top already: the count is not worth a search
        return int(props.get("added-data-files", 0))

    def watch_mid_write(self) -> None:
        """Fault point `mid_write`: once a write task has finished (its data files are on
        disk) while no table has committed yet, kill -9 (tests only)."""
        fault, spark = self.job.fault, self.job.spark
        if fault.point != "mid_write" or not (fault.any_batch or fault.batch == self.batch_id):
            return
        tracker = spark.sparkContext.statusTracker()

        def watch() -> None:
            while not self._writing.is_set():
                for job_id in tracker.getJobIdsForGroup(APPEND_JOB_GROUP):
                    job = tracker.getJobInfo(job_id)
                    for stage in job.stageIds if job else ():
                        info = tracker.getStageInfo(stage)
                        if info and info.numCompletedTasks > 0 and self._committed == 0:
                            fault.hit("mid_write", self.batch_id, spark)
                time.sleep(0.005)

        threading.Thread(target=watch, name="fault-mid-write", daemon=True).start()

    def done_writing(self) -> None:
        self._writing.set()

    def timing(self) -> str:
        return ", ".join(f"{t} {s:.2f}s" for t, s in sorted(self.seconds.items()))


def failure_summary(error: BaseException | str, settings: Settings, checkpoint: str) -> str:
    """The one line a failed query leaves in the job's log: a full disk said as such; else the
    first line of Spark's message and, when that is not it, the innermost error it carries (a
    Python traceback from foreachBatch, a Java `Caused by:`)."""
    text = str(error)
    if "No space left on device" in text:  # ENOSPC, from a Spark task or from the driver
        return (
            f"no space left on device writing to the warehouse {settings.warehouse} "
            f"(or the checkpoint {checkpoint}): free space there and start the job again; "
            "the failed batch is re-run, exactly once"
        )
    lines = [line.strip().removeprefix("Caused by: ") for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    causes = [line for line in lines[1:] if _ERROR_LINE.match(line)]
    return lines[0] if not causes or causes[-1] in lines[0] else f"{lines[0]} ... {causes[-1]}"


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


def run(settings: Settings, options: JobOptions) -> int:
    """Build the session, run the job, stop Spark; the process exit status."""
    job = StreamJob(settings, options)
    try:
        return job.run()
    finally:
        if job._spark is not None:
            with contextlib.suppress(Exception):
                job._spark.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movesmart-stream", description=__doc__.splitlines()[0])
    p.add_argument("--trigger-interval", default="10 seconds", help="micro-batch interval, e.g. '10 seconds'")
    p.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        default=DEFAULT_MAX_OFFSETS,
        help=f"cap of records per batch (default {DEFAULT_MAX_OFFSETS:,}; 0: no cap)",
    )
    p.add_argument("--available-now", action="store_true", help="drain what Kafka holds now, then exit 0")
    p.add_argument("--checkpoint", default=None, help="checkpoint URI (default: <checkpoint root>/stream)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        options = JobOptions(
            trigger_interval=check_interval(args.trigger_interval),
            max_offsets_per_trigger=args.max_offsets_per_trigger,
            available_now=args.available_now,
            checkpoint=args.checkpoint,
        )
        Fault(os.environ.get(FAULT_ENV))  # validate early
    except SettingsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return run(settings, options)


if __name__ == "__main__":
    sys.exit(main())
