"""Build the Spark driver's class-data sharing (AppCDS) archive: ~2 s off every Spark start.

A `make setup` tool, outside the runtime package: the package only maps the archive.

Why: before its first query a Spark driver loads, parses and verifies thousands of classes
from the pyspark installation's jars; on two cores that is ~2 of the ~7 s between process
start and the streaming job's first batch. The JDK can keep those classes, parsed and
verified, in a memory-mapped archive (dynamic CDS, JEP 350). `make setup` builds one with
this tool (`python tools/build_spark_cds.py`): a child process runs a small workload shaped
like ours — session, the fast-contract UDF and the exact path, a cached batch, a partitioned
Parquet write, Iceberg appends through a scratch catalog, a one-batch foreachBatch query —
with -XX:ArchiveClassesAtExit, and the archive is renamed into place only after that JVM has
exited, so no JVM maps half of one.

`movesmart_dagster.spark_session.archive_option` adds -XX:SharedArchiveFile to the driver's
options when the archive exists and `MOVESMART_SPARK_CDS` is on (the default). The JVM checks the archive
against its own build and class path and runs without it when they differ (another JDK or
pyspark; `make setup` rebuilds it when either changes) — at worst slower, never wrong.
Classes from `spark.jars` (Kafka connector, S3A, our contract) load through Spark's own
class loader, which CDS does not cover; executors on a cluster are other JVMs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from movesmart_dagster.settings import Settings, load_settings

# what the dump prints about classes it cannot archive (reflection stubs, old bytecode)
_QUIET_DUMP = "-Xlog:cds=off,cds+dynamic=off"


def _workload(settings: Settings, dump_to: str, scratch: Path) -> None:
    """Runs in the child: the classes of a streaming batch, loaded once, then a clean JVM exit."""
    import pyarrow as pa
    from pyspark import SparkContext

    from movesmart_dagster.contract import EventTimeRule
    from movesmart_dagster.simulator.fleet import SimConfig, iter_records
    from movesmart_dagster.spark_session import build_spark, driver_java_options
    from movesmart_dagster.streaming.batch_report import batch_stats
    from movesmart_dagster.streaming.projection import table_projection
    from movesmart_dagster.streaming.source import JOB_SPARK_CONF
    from movesmart_dagster.streaming.validation import route
    from movesmart_dagster.tables.catalog import ensure_tables, spark_table

    java_options = (
        f"{driver_java_options(settings, cds=False)} -XX:ArchiveClassesAtExit={dump_to} {_QUIET_DUMP}"
    )
    spark = build_spark(
        settings, "movesmart-cds", extra={**JOB_SPARK_CONF, "spark.driver.extraJavaOptions": java_options}
    )
    records = list(iter_records(SimConfig(vehicles=20, seed=7, bad_ratio=0.05, max_events=5_000)))
    # handed over as Arrow, like the job's exact path: no Python worker processes
    rows = pa.table(
        {
            "topic": [r.topic for r in records],
            "partition": pa.array([0] * len(records), pa.int32()),
            "offset": pa.array(range(len(records)), pa.int64()),
            "value": pa.array([r.value for r in records], pa.binary()),
        }
    )
    kafka = spark.createDataFrame(rows).selectExpr("*", "current_timestamp() AS timestamp")
    routed = route(kafka, settings.max_message_bytes, EventTimeRule.from_settings(settings)).cache()
    stats = batch_stats(routed)
    ensure_tables(settings)
    for table in sorted({r["_dest"] for r in stats}):
        rows = routed.where(routed._dest == table).selectExpr(*table_projection(table, datetime.now(UTC)))
        rows.write.partitionBy("event_date").parquet(str(scratch / "tables" / table))
        # the job's own write: an Iceberg append through the catalog, then a read back
        rows.writeTo(spark_table(settings, table)).option(
            "snapshot-property.movesmart.batch-id", "0"
        ).append()
        spark.table(spark_table(settings, table)).where("event_date is not null").count()
    # the streaming machinery: one availableNow batch through foreachBatch
    source = spark.readStream.schema(spark.read.parquet(str(scratch / "tables" / "quarantine")).schema)
    query = (
        source.parquet(str(scratch / "tables" / "quarantine"))
        .writeStream.option("checkpointLocation", str(scratch / "checkpoint"))
        .foreachBatch(lambda batch, _: batch.write.mode("append").parquet(str(scratch / "copy")))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    gateway = SparkContext._gateway  # type: ignore[attr-defined]
    jvm = getattr(gateway, "proc", None)
    spark.stop()
    gateway.shutdown()
    if jvm is not None:  # the JVM writes the archive on its way out: wait for it
        jvm.stdin.close()
        jvm.wait(timeout=300)


_WAREHOUSE_VARIABLES = ("MOVESMART_WAREHOUSE", "MOVESMART_CATALOG", "MOVESMART_S3_ENDPOINT")


def build_archive(settings: Settings, target: Path | None = None) -> Path:
    """Build the archive (default: `settings.spark_cds_archive`) and return its path."""
    target = target or settings.spark_cds_archive
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="movesmart-cds-") as scratch:
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        # the workload's Iceberg catalog and warehouse live in the scratch folder, never in the
        # user's home (and never on S3)
        env = {k: v for k, v in os.environ.items() if k not in _WAREHOUSE_VARIABLES}
        env.update(MOVESMART_JARS_DIR=str(settings.jars_dir), MOVESMART_HOME=str(Path(scratch) / "home"))
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(partial), scratch],
            env=env,
            capture_output=True,
            text=True,
        )
        try:
            if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
                raise RuntimeError(
                    f"building the Spark class-data archive failed (exit {done.returncode}):\n"
                    + "\n".join(done.stderr.splitlines()[-20:])
                )
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    size_mb = target.stat().st_size / 2**20
    print(f"Spark class-data archive: {target} ({size_mb:.0f} MB, {time.monotonic() - started:.0f} s)")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    if args[:1] == ["--child"]:
        _workload(settings, args[1], Path(args[2]))
        return 0
    build_archive(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
