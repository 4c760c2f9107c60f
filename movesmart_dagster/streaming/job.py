"""The Spark Structured Streaming job: Kafka -> validated, partitioned Parquet tables.

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
  merely unusual) is marked `_exact`. In `foreachBatch`, those few rows are judged by the
  contract itself: `contract.validate` on the driver (up to
  `MOVESMART_DRIVER_VALIDATION_MAX_ROWS` per batch), or the rules as Spark SQL on the
  executors beyond that — while the fast path's valid rows are already being written
  (the second pass has its own scheduler pool, so its small jobs do not queue behind the
  writes). A test runs one corpus through all three ways and the reference. Every Kafka
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
- `foreachBatch` writes each batch through `committer.BatchCommitter`: staging under
  `_staging/`, a manifest, deterministic final names, moves — all before the function
  returns and Spark commits the batch. See committer.py for the crash analysis: readers
  that list files see every record exactly once.
- Progress: after the moves, one JSON line per batch in `settings.progress_log`
  (`progress.py`) and, under Dagster Pipes, the same dict as a custom message.
- Operation: `--trigger-interval` (default 10 seconds), `--max-offsets-per-trigger`
  (all topics together), `--available-now` drains what Kafka holds and exits 0;
  SIGTERM/SIGINT stop the query between batches (a batch caught mid-way is re-run on the
  next start, harmlessly). A new checkpoint starts from the earliest offsets.
- Fault injection for tests: `MOVESMART_FAULT_POINT=<point>:batch=<id>` kills the driver's
  JVM and the Python process with SIGKILL at `start`, `after_stage`, `after_manifest`,
  `mid_move` or `after_move` of that batch (or of every batch with `batch=*`).
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

from movesmart_dagster.schemas import (
    ALL_TABLES,
    PARTITION_COLUMN,
    QUARANTINE_TABLE,
    RECORDS,
    TABLES,
    TOPICS,
    columns_for_table,
)
from movesmart_dagster.settings import Settings, SettingsError, load_settings
from movesmart_dagster.streaming import progress
from movesmart_dagster.streaming.committer import BatchCommitter, HadoopFS
from movesmart_dagster.streaming.validation import (
    EXACT_DEST,
    register_fast_contract,
    reroute_exact,
    route_fast,
    table_projection,
    unpack,
    with_exact,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

QUERY_NAME = "movesmart-stream"
TABLE_TOPICS = {r.table: r.topic for r in RECORDS}
FAULT_ENV = "MOVESMART_FAULT_POINT"
FAULT_POINTS = ("start", "after_stage", "after_manifest", "mid_move", "after_move")

_UNREPEATED_TYPES = ("double", "bigint", "timestamp")


def parquet_dictionary_conf() -> dict[str, str]:
    """Parquet dictionary encoding off for the tables' double, bigint and timestamp columns
    (struct leaves included): coordinates, measurements, offsets and times rarely repeat,
    and the writer fills a dictionary per column chunk before it falls back to plain.
    Strings and ints (makes, statuses, partitions, years) keep it; where it does not pay
    (unique ids) the writer drops it itself after the first page. 3M catch-up: the writes
    ~0.6 s shorter, files ~3% larger. Session-wide Hadoop keys by column name (a name has
    one type in every table): as per-write options they missed some files' writers (the
    test caught dictionary-encoded doubles, camelCase and lower-case names alike)."""
    conf = {}
    for table in ALL_TABLES:
        for name, hive_type in columns_for_table(table):
            if hive_type in _UNREPEATED_TYPES:
                conf[f"spark.hadoop.parquet.enable.dictionary#{name}"] = "false"
            for leaf, leaf_type in re.findall(r"(\w+):(\w+)", hive_type.removeprefix("struct<")):
                if leaf_type in _UNREPEATED_TYPES:
                    conf[f"spark.hadoop.parquet.enable.dictionary#{name}.{leaf}"] = "false"
    return conf


# Spark settings the job adds to the shared ones (spark_session.spark_conf).
JOB_SPARK_CONF: dict[str, str] = {
    **parquet_dictionary_conf(),
    # a throwing expression would fail the batch forever (a poison message); the rules use
    # try_* functions, and this makes any cast we missed return NULL instead
    "spark.sql.ansi.enabled": "false",
    # staging is private to the batch: task commits may write straight into it
    "spark.hadoop.mapreduce.fileoutputcommitter.algorithm.version": "2",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.sql.streaming.metricsEnabled": "false",
    # jobs of different scheduler pools share the cores (the second validation pass runs
    # beside the writes of the first pass's rows); within a pool, first come first served
    "spark.scheduler.mode": "FAIR",
    # INT64 UTC timestamps (not Spark's legacy INT96): what DuckDB, Athena and Spectrum expect
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # the batch is cached once and read by six writes: plain columns build faster
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    # a task writes its few event_date partitions side by side instead of sorting its rows
    "spark.sql.maxConcurrentOutputFileWriters": "16",
    # zstd's fastest level: most of zstd's size gain at a fraction of level 3's CPU
    "spark.hadoop.parquet.compression.codec.zstd.level": "1",
}
# a task reads a known offset range: when its consumer prefetches past the range end, the
# broker would hold that fetch for the default 500 ms (reading 3M records: 8.6 s -> 3.0 s)
KAFKA_READ_OPTIONS: dict[str, str] = {"kafka.fetch.max.wait.ms": "10"}
# Records per micro-batch (all topics): bounds the cached batch, ~110 bytes per record,
# ~0.55 GB at 5M in the default 2 GB driver (5M in one batch: peak RSS 2.4 GB). A catch-up
# in big batches pays the per-batch planning and task start-up less often: 3M records took
# 39.6 s in 1M batches, 29.4 s in one (2 cores).
DEFAULT_MAX_OFFSETS = 5_000_000
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


class _Pipes:
    """Dagster Pipes, when the job runs under it (custom message per committed batch)."""

    def __init__(self) -> None:
        self.context: Any = None
        try:
            from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

            if os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR):
                self.context = open_dagster_pipes()
        except Exception as err:  # noqa: BLE001 - observability must not stop the stream
            log(f"dagster pipes unavailable: {err}")

    def report(self, payload: dict[str, Any]) -> None:
        if self.context is not None:
            with contextlib.suppress(Exception):
                self.context.report_custom_message(payload)

    def close(self) -> None:
        if self.context is not None:
            with contextlib.suppress(Exception):
                self.context.close()


class StreamJob:
    """The query, its foreachBatch and the process lifecycle around it."""

    def __init__(self, settings: Settings, options: JobOptions, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self.options = options
        self.checkpoint = options.checkpoint or f"{settings.checkpoint_root}/stream"
        self.fault = Fault(os.environ.get(FAULT_ENV))
        self._spark = spark
        self._stop = threading.Event()
        self._pipes: _Pipes | None = None
        self._committer: BatchCommitter | None = None
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
        register_fast_contract(self.spark)
        return route_fast(self.source(), self.settings.max_message_bytes)

    def _query_id_from_checkpoint(self) -> str:
        """The query id Spark keeps in `<checkpoint>/metadata` (stable across restarts)."""
        import json

        raw = HadoopFS(self.spark).read_bytes(f"{self.checkpoint}/metadata")
        if raw is None:
            raise RuntimeError(f"no checkpoint metadata under {self.checkpoint}")
        return str(json.loads(raw.decode().splitlines()[0])["id"])

    # --- one micro-batch -------------------------------------------------------------------
    def committer(self) -> BatchCommitter:
        if self._committer is None:
            self._query_id = self._query_id_from_checkpoint()
            self._committer = BatchCommitter(HadoopFS(self.spark), self.settings.warehouse, self._query_id)
        return self._committer

    def process_batch(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        t0 = time.monotonic()
        self.phases = {}
        started = datetime.now(UTC)
        committer = self.committer()
        spark = self.spark
        self.fault.hit("start", batch_id, spark)
        committer.prepare(ALL_TABLES, batch_id)
        previous = committer.previous_moves(batch_id)

        batch.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            routed = unpack(batch)
            stats = _stats(routed)
            self.phases["read"] = time.monotonic() - t0
            n_exact = sum(r["n"] for r in stats if r["_dest"] == EXACT_DEST)

            def stage(rows: DataFrame, table: str, second_pass: bool = False) -> None:
                rows = rows.where(F.col("_dest") == table)
                if table in TABLE_TOPICS:
                    # every cached partition holds one topic, and the cache keeps each column's
                    # min/max: this predicate skips the other topics' partitions unread
                    rows = rows.where(F.col("kafka_topic") == TABLE_TOPICS[table])
                (
                    rows.selectExpr(*table_projection(table, started))
                    .write.mode("append")
                    .partitionBy(PARTITION_COLUMN)
                    .parquet(committer.staging_dir(table, batch_id, second_pass))
                )

            # the writes are independent Spark jobs over the cached batch: side by side, so no
            # core idles while one job waits on its last task. The fast path's valid rows are
            # written while the driver judges the rest; quarantine waits for both passes.
            with ThreadPoolExecutor(max_workers=2 * len(ALL_TABLES)) as pool:
                fast_tables = sorted({r["_dest"] for r in stats} - {EXACT_DEST, QUARANTINE_TABLE})
                writes = [pool.submit(stage, routed, t) for t in fast_tables]
                quarantined = routed
                if n_exact:
                    exact = self._second_pass(routed, n_exact, batch_id)
                    exact_stats = _stats(exact)
                    stats = [r for r in stats if r["_dest"] != EXACT_DEST] + exact_stats
                    for t in sorted({r["_dest"] for r in exact_stats} - {QUARANTINE_TABLE}):
                        writes.append(pool.submit(stage, exact, t, True))
                    quarantined = with_exact(routed, exact)
                tables = sorted({r["_dest"] for r in stats})
                if QUARANTINE_TABLE in tables:
                    writes.append(pool.submit(stage, quarantined, QUARANTINE_TABLE))
                for future in writes:
                    future.result()
        finally:
            batch.unpersist()
        self.phases["stage"] = time.monotonic() - t0 - sum(self.phases.values())
        self.fault.hit("after_stage", batch_id, spark)

        moves = committer.plan(tables, batch_id)
        committer.write_manifest(batch_id, moves)
        self.fault.hit("after_manifest", batch_id, spark)
        half = len(moves) // 2

        def on_move(done: int) -> None:
            if done == half:
                self.fault.hit("mid_move", batch_id, spark)

        committer.apply(batch_id, moves, previous, on_progress=on_move if moves else None)
        self.fault.hit("after_move", batch_id, spark)
        committer.finish(tables, batch_id)
        self.phases["commit"] = time.monotonic() - t0 - sum(self.phases.values())

        report = self._progress(batch_id, started, t0, stats, moves)
        self._publish(report)
        self.batches += 1

    def _second_pass(self, routed: DataFrame, n_exact: int, batch_id: int) -> DataFrame:
        """The rows the fast path could not vouch for (few, as a rule), judged by the exact
        rules and materialized with their plan cut off, so the writes plan a small union."""
        t0 = time.monotonic()
        on_driver = n_exact <= self.settings.driver_validation_max_rows
        sc = self.spark.sparkContext
        # its own scheduler pool: its small jobs share the cores with the running writes
        # instead of queueing behind them (the quarantine write waits for this pass)
        sc.setLocalProperty("spark.scheduler.pool", "second_pass")
        try:
            exact = (
                reroute_exact(routed, self.settings.max_message_bytes, by_reference=on_driver)
                .coalesce(max(1, min(sc.defaultParallelism, n_exact // 100_000)))
                .localCheckpoint(eager=True)
            )
        finally:
            sc.setLocalProperty("spark.scheduler.pool", None)
        log(
            f"batch {batch_id}: {n_exact} record(s) judged by the exact rules in {time.monotonic() - t0:.1f}s "
            + ("(contract.validate on the driver)" if on_driver else "(Spark SQL on the executors)")
        )
        return exact

    def _progress(
        self, batch_id: int, started: datetime, t0: float, stats: list[Any], moves: list[Any]
    ) -> progress.BatchProgress:
        now = datetime.now(UTC)
        tables: dict[str, progress.TableProgress] = {t: progress.TableProgress() for t in ALL_TABLES}
        files: dict[str, int] = {}
        for m in moves:
            files[m.table] = files.get(m.table, 0) + 1
        newest_event: dict[str, datetime] = {}
        newest_kafka: dict[str, datetime] = {}
        parts: dict[str, set[str]] = {t: set() for t in ALL_TABLES}
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
                parts[dest].add(r[PARTITION_COLUMN].isoformat())
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

    def _publish(self, report: progress.BatchProgress) -> None:
        log_path = self.settings.progress_log
        last = progress.last(log_path)
        if not (last and last.query_id == report.query_id and last.batch_id == report.batch_id):
            progress.append(log_path, report)
            if self._pipes:
                self._pipes.report({"type": "movesmart.batch", **report.to_dict()})
        rows = sum(t.rows for n, t in report.tables.items() if n in TABLES)
        quarantined = report.tables[QUARANTINE_TABLE].rows
        log(
            f"batch {report.batch_id} committed: {rows} rows, {quarantined} quarantined, "
            f"{report.duration_ms} ms (" + ", ".join(f"{k} {v:.1f}s" for k, v in self.phases.items()) + ")"
        )

    # --- lifecycle -------------------------------------------------------------------------
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
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in previous:
                signal.signal(sig, self.request_stop)
        self._pipes = _Pipes()
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
            query = self.start()
            while query.isActive:
                if self._stop.is_set():
                    self._stop_between_batches(query)
                    break
                query.awaitTermination(0.5)
            error = query.exception()
            if error is not None:
                log(f"query failed: {str(error).splitlines()[0]}")
                return 1
            log(f"stopped after {self.batches} batch(es)")
            return 0
        finally:
            if in_main:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if self._pipes:
                self._pipes.close()

    def _stop_between_batches(self, query: StreamingQuery, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while query.isActive and time.monotonic() < deadline:
            status = query.status
            if not status.get("isTriggerActive", False):
                break
            time.sleep(0.2)
        query.stop()


def _stats(routed: DataFrame) -> list[Any]:
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
