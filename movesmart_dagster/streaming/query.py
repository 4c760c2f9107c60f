"""The streaming query and the process lifecycle around it.

Why a module of its own: starting the one query (its source, checkpoint and trigger),
creating the tables before the first batch, stopping between batches on SIGTERM/SIGINT
and turning the outcome into an exit status change with how the job is operated, not with
what a batch does (`micro_batch.py`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from movesmart_dagster.contract import EventTimeRule
from movesmart_dagster.settings import Settings
from movesmart_dagster.streaming.failure import failure_summary
from movesmart_dagster.streaming.faults import FAULT_ENV, Fault
from movesmart_dagster.streaming.joblog import log
from movesmart_dagster.streaming.micro_batch import MicroBatch
from movesmart_dagster.streaming.options import JobOptions
from movesmart_dagster.streaming.source import JOB_SPARK_CONF, kafka_source
from movesmart_dagster.streaming.validation.fast_contract import register_fast_contract
from movesmart_dagster.streaming.validation.fast_path import route_fast
from movesmart_dagster.tables.catalog import CatalogError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

QUERY_NAME = "movesmart-stream"


class StreamJob:
    """The query, its foreachBatch and the process lifecycle around it."""

    def __init__(self, settings: Settings, options: JobOptions, spark: SparkSession | None = None) -> None:
        self.settings = settings
        self.options = options
        self.trigger_interval = options.trigger_interval or settings.stream_trigger_interval
        self.checkpoint = options.checkpoint or f"{settings.checkpoint_root}/stream"
        self.time_rule = EventTimeRule.from_settings(settings)
        self.fault = Fault(os.environ.get(FAULT_ENV))
        self._spark = spark
        self._stop = threading.Event()
        self._catalog: Any = None
        self._query_id: str | None = None
        self.batches = 0
        # the last batch this query run finished: the next one is new to every table
        self.finished_batch: int | None = None

    # --- Spark -----------------------------------------------------------------------------
    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from movesmart_dagster.spark_session import build_spark

            self._spark = build_spark(
                self.settings,
                self.options.app_name,
                extra={**JOB_SPARK_CONF, **dict(self.options.spark_conf)},
                resident=not self.options.available_now,  # the continuous stream runs for days
            )
        return self._spark

    def source(self) -> DataFrame:
        """The five topics through one Kafka source: one offset fetch per trigger, one scan."""
        return kafka_source(self.spark, self.settings, self.options.max_offsets_per_trigger)

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
        """The `foreachBatch` function (`micro_batch.py`)."""
        MicroBatch(self, batch_id).run(batch)
        self.batches += 1
        self.finished_batch = batch_id

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def catalog(self) -> Any:
        """The pyiceberg view of the catalog (to create and evolve the tables)."""
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
        self.finished_batch = None  # a new query run re-runs the batch the last one left unrecorded
        writer = (
            self.routed_stream()
            .writeStream.queryName(QUERY_NAME)
            .option("checkpointLocation", self.checkpoint)
            .foreachBatch(self.process_batch)
        )
        if self.options.available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=self.trigger_interval)
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
                + ("available-now" if self.options.available_now else f"every {self.trigger_interval}")
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

    def stop_spark(self) -> None:
        """Stop the session if this job built or was given one (errors ignored: exiting)."""
        if self._spark is not None:
            with contextlib.suppress(Exception):
                self._spark.stop()

    def _stop_between_batches(self, query: StreamingQuery, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while query.isActive and time.monotonic() < deadline:
            status = query.status
            if not status.get("isTriggerActive", False):
                break
            time.sleep(0.2)
        query.stop()


def run(settings: Settings, options: JobOptions) -> int:
    """Build the session, run the job, stop Spark; the process exit status."""
    job = StreamJob(settings, options)
    try:
        return job.run()
    finally:
        job.stop_spark()
