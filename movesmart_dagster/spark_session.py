"""One way to build a SparkSession for every Move Smart job (streaming, analytics, tests).

Why here: the jars (Kafka source, S3A, Iceberg) must reach Spark through `spark.jars` before the
JVM starts — no `--packages`, no Ivy, nothing downloaded at run time — and S3A needs the
same endpoint/encryption settings everywhere, and every session names the same Iceberg catalog. `spark_conf()` is the single source of
that configuration; it also feeds the `spark-submit` command line built for Dagster.

Why the JVM's stderr passes through Python: Spark's launcher adds the incubating Vector API
module to every driver JVM, which then prints "WARNING: Using incubator modules" at each start —
in the `make dev` terminal whenever a run starts Spark. pyspark's own `launch_gateway` takes the
pipe (`popen_kwargs`); a thread copies every other line to our stderr, so Spark's warnings and
errors still show where they did.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

from movesmart_dagster.settings import Settings
from movesmart_dagster.tables.catalog import SPARK_CATALOG_PREFIX, spark_catalog_conf, sqlite_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_jars(settings: Settings) -> list[str]:
    jars = sorted(str(p) for p in settings.spark_jars_dir.glob("*.jar"))
    if not jars:
        raise RuntimeError(f"Spark connector jars missing in {settings.spark_jars_dir}: run `make setup`")
    return jars


def archive_option(settings: Settings) -> str | None:
    """The driver JVM option that maps the class-data archive, when there is one and it is wanted.

    `make setup` builds the archive (`tools/build_spark_cds.py`, dynamic AppCDS): ~2 s off every
    driver start. The JVM checks it against its own build and class path and runs without it
    when they differ — at worst slower, never wrong.
    """
    archive = settings.spark_cds_archive
    if settings.spark_cds and archive.is_file():
        return f"-XX:SharedArchiveFile={archive}"
    return None


# the driver's logging: warnings to stderr without Spark's start-up notices
LOG4J_CONFIG = Path(__file__).with_name("spark-log4j2.properties")

# HotSpot's (JDK 17-25) defaults for tier 4 (C2) compilation
_C2_THRESHOLDS = {"Invocation": 5_000, "Compile": 15_000, "BackEdge": 40_000}


def driver_java_options(settings: Settings, cds: bool = True, resident: bool = False) -> str:
    """The driver JVM's options (in local mode, the JVM that runs everything).

    ParallelGC: on two cores G1's concurrent work cost the streaming catch-up ~6%
    (45.0/46.8 s vs 42.6/44.0 s on 3M events, interleaved runs); the driver heap is a few
    GB, so its pauses stay short next to a 10 s trigger.

    C2 thresholds x30: in a 3M-record catch-up the C2 compiler threads used ~15 s of CPU
    (of 2 cores x 28 s), compiling lukewarm Spark, Parquet and Kafka code. Raised, C2
    keeps to the really hot code — the per-record loops pass the thresholds within
    seconds — and the catch-up takes 24 s instead of 28 (interleaved runs; x10: 25.5 s,
    x100: erratic). Executors on a cluster keep the JVM's defaults.

    cds: map the class-data archive when there is one (`archive_option`).

    resident: a driver that runs for days (the continuous stream) takes its whole heap
    (MOVESMART_SPARK_DRIVER_MEMORY) at start, touched (`-Xms` = `-Xmx`, AlwaysPreTouch), so its
    footprint is the setting from the first minute. Left to size its heap, the collector grew it
    after every full GC (old generation 252 -> 410 MB in 11 minutes at 2,000 events/s, the live
    data after each full GC flat at ~150-180 MB): resident memory crept +15% in 10 minutes and
    kept creeping towards the setting, a leak to any soak. Short runs keep growing from small.
    """
    options = [
        "-Duser.timezone=UTC",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-XX:+UseParallelGC",
        *(f"-XX:Tier4{name}Threshold={30 * default}" for name, default in _C2_THRESHOLDS.items()),
    ]
    if resident:
        options += [f"-Xms{settings.spark_driver_memory}", "-XX:+AlwaysPreTouch"]
    archive = archive_option(settings) if cds else None
    return " ".join([*options, archive] if archive else options)


def spark_conf(settings: Settings, app_name: str = "movesmart", resident: bool = False) -> dict[str, str]:
    """Every Spark setting we rely on, as `spark-submit --conf` pairs (resident: a driver that
    runs for days, `driver_java_options`)."""
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(spark_jars(settings)),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": driver_java_options(settings, resident=resident),
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # warehouse on s3a: credentials from the provider chain, never from us
        "spark.hadoop.fs.s3a.aws.credentials.provider": (
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
        ),
        "spark.hadoop.fs.s3a.endpoint.region": settings.aws_region,
    }
    if settings.spark_master.startswith("local"):
        # local mode: nothing listens beyond loopback. On a cluster (spark://, k8s://, yarn)
        # executors must reach the driver, so Spark's defaults apply (SPARK_LOCAL_IP/-HOSTNAME).
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        conf["spark.driver.host"] = "127.0.0.1"
    # the Iceberg catalog of the tables (tables/catalog.py)
    conf.update(spark_catalog_conf(settings))
    if settings.s3_sse != "none":
        # server-side encryption of every object S3A writes (data and metadata files, checkpoints)
        conf["spark.hadoop.fs.s3a.encryption.algorithm"] = settings.s3_sse
        if settings.s3_sse_kms_key_id:  # absent: the account's aws/s3 managed key
            conf["spark.hadoop.fs.s3a.encryption.key"] = settings.s3_sse_kms_key_id
    if settings.s3_endpoint:
        conf.update(
            {
                "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint,
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.connection.ssl.enabled": str(
                    settings.s3_endpoint.startswith("https")
                ).lower(),
            }
        )
    return conf


def use_catalog(spark: SparkSession, settings: Settings) -> None:
    """Point a (possibly reused) session's `movesmart` catalog at these settings' catalog.

    A session reused with other settings (tests, Dagster's in-process executor, a run's assets
    sharing the active session) keeps the catalogs it instantiated: when the catalog's
    properties differ, they are set and Spark's catalogs forgotten, so `movesmart` loads anew.
    The local catalog's folder is created first (the SQLite driver creates the file, not its
    folder)."""
    if settings.catalog == "local":
        sqlite_path(settings).parent.mkdir(parents=True, exist_ok=True)
    wanted = {k: v for k, v in spark_catalog_conf(settings).items() if k.startswith(SPARK_CATALOG_PREFIX)}
    stale = {k: v for k, v in wanted.items() if spark.conf.get(k, None) != v}
    if not stale:
        return
    for key, value in wanted.items():
        spark.conf.set(key, value)
    for key in {k for k in spark.conf.getAll if k.startswith(SPARK_CATALOG_PREFIX + ".")} - set(wanted):
        spark.conf.unset(key)  # a property of the other catalog kind (glue.endpoint, uri, ...)
    spark._jsparkSession.sessionState().catalogManager().reset()  # type: ignore[attr-defined]


# what the driver JVM prints at every start that says nothing wrong (see the module docstring)
HARMLESS_JVM_STDERR = frozenset({"WARNING: Using incubator modules: jdk.incubator.vector"})


def forward_jvm_stderr(stream: IO[bytes]) -> None:
    """Copy the JVM's stderr to ours line by line, minus HARMLESS_JVM_STDERR, until it closes.
    Never raises: a reader that stopped would leave the JVM blocked on a full pipe."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        if line.rstrip("\r\n") in HARMLESS_JVM_STDERR:
            continue
        with contextlib.suppress(Exception):  # our stderr closed at exit: keep draining
            sys.stderr.write(line)
            sys.stderr.flush()


def _start_context(conf: dict[str, str]) -> None:
    """The process's first SparkContext, on a JVM whose stderr goes through `forward_jvm_stderr`."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    spark_conf_ = SparkConf(loadDefaults=False).setAll(list(conf.items()))
    gateway = launch_gateway(spark_conf_, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(
        target=forward_jvm_stderr, args=(gateway.proc.stderr,), name="spark-jvm-stderr", daemon=True
    ).start()
    SparkContext(conf=spark_conf_, gateway=gateway)


def build_spark(
    settings: Settings,
    app_name: str = "movesmart",
    extra: dict[str, str] | None = None,
    resident: bool = False,
) -> SparkSession:
    """A SparkSession configured from the settings (reuses the active one if there is one);
    resident: for a driver that runs for days (`driver_java_options`)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    conf = {**spark_conf(settings, app_name, resident), **(extra or {})}
    # no JVM in this process yet (pyspark keeps one gateway per process; a launcher may hand one in)
    if SparkContext._gateway is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # type: ignore[attr-defined]
        _start_context(conf)
    active = SparkSession.getActiveSession()
    if active is not None:  # before the builder sets the new values on it: a stale catalog is reset
        use_catalog(active, settings)
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    use_catalog(spark, settings)
    spark.sparkContext.setLogLevel("WARN")
    return spark
