"""Each micro-batch's Iceberg appends: one per table, exactly once across re-runs.

Why a module of its own: the exactly-once argument lives here — each append carries the
streaming query id and the batch id as snapshot summary properties, and a re-run batch
skips the tables whose history already holds them. It changes with Iceberg and the catalog,
not with routing or reporting.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from movesmart_dagster.streaming.query import StreamJob

# snapshot summary properties of every append: what makes a re-run batch recognisable
QUERY_ID_PROPERTY = "movesmart.query-id"
BATCH_ID_PROPERTY = "movesmart.batch-id"
APPEND_JOB_GROUP = "movesmart-append"


class TableCommits:
    """The appends of one micro-batch: at most one per table, idempotent on (query id, batch id).

    Why it is exactly once: Spark re-runs a batch it has not recorded as committed with the
    same offsets and the same batch id. Before its append, each table's snapshot history is
    searched for a snapshot carrying this query id and batch id; a table that holds one
    committed this batch's rows in a failed attempt and is skipped. The search walks back
    from the current snapshot and stops at an older batch of the same query (batches commit
    in order), so it reads a few snapshots, not the whole history.

    The search is needed only for a batch an earlier process may have started: the first
    batch of a query run. Spark plans batch N+1 only after batch N is recorded as committed,
    so once this query run has finished batch N, no process has written batch N+1 anywhere;
    the next batch's appends skip the search (`fresh`). Snapshots are read through the
    driver JVM's catalog, as Spark's own writes read them: a table's metadata is never parsed
    in Python on the stream's path (each parse of a metadata file that grows with every
    snapshot left the Python heap larger, batch after batch).
    """

    def __init__(self, job: StreamJob, query_id: str, batch_id: int, fresh: bool = False) -> None:
        self.job = job
        self.query_id = query_id
        self.batch_id = batch_id
        self.fresh = fresh  # this query run finished the previous batch: nothing wrote this one
        self.files: dict[str, int] = {}  # data files each append added
        self.seconds: dict[str, float] = {}  # each append's duration
        self.skipped: list[str] = []
        self._lock = threading.Lock()
        self._committed = 0
        self._writing = threading.Event()

    def _table(self, table: str, spark: SparkSession) -> Any:
        """The table as Spark's Iceberg catalog loads it now (a py4j `org.apache.iceberg.Table`)."""
        from movesmart_dagster.tables.catalog import CATALOG_NAME, identifier

        jvm, session = spark.sparkContext._jvm, spark._jsparkSession
        # Spark resolves a catalog's settings through the calling thread's active session: a
        # pool thread of the batch has none until it is set (a DataFrame action sets its own)
        jvm.org.apache.spark.sql.SparkSession.setActiveSession(session)
        catalog = session.sessionState().catalogManager().catalog(CATALOG_NAME)
        name = jvm.org.apache.iceberg.catalog.TableIdentifier.parse(identifier(self.job.settings, table))
        return catalog.icebergCatalog().loadTable(name)

    def already_committed(self, table: str, spark: SparkSession) -> bool:
        iceberg = self._table(table, spark)
        snapshot = iceberg.currentSnapshot()
        while snapshot is not None:
            summary = snapshot.summary()
            if summary.get(QUERY_ID_PROPERTY) == self.query_id:
                batch = int(summary.get(BATCH_ID_PROPERTY) or -1)
                if batch == self.batch_id:
                    return True
                if batch < self.batch_id:
                    return False
            parent = snapshot.parentId()
            if parent is None:
                return False
            snapshot = iceberg.snapshot(parent)
        return False

    def append(self, table: str, rows: DataFrame) -> None:
        """One Iceberg append of the table's rows of this batch, unless the table holds it."""
        from movesmart_dagster.tables.catalog import spark_table

        t0 = time.monotonic()
        if not self.fresh and self.already_committed(table, rows.sparkSession):
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
        added = self._added_files(table, rows.sparkSession)
        with self._lock:
            self.files[table] = added
            self.seconds[table] = time.monotonic() - t0
            self._committed += 1
            first = self._committed == 1
        if first:
            self.job.fault.hit("after_first_table", self.batch_id, self.job.spark)

    def _added_files(self, table: str, spark: SparkSession) -> int:
        """Data files this batch's append added to the table (its snapshot's summary)."""
        snapshot = self._table(table, spark).currentSnapshot()
        summary = snapshot.summary() if snapshot is not None else {}
        if summary.get(BATCH_ID_PROPERTY) != str(self.batch_id):
            return 0  # another writer committed on top already: the count is not worth a search
        return int(summary.get("added-data-files") or 0)

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
