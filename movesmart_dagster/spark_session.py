"""One way to build a SparkSession for every Move Smart job (streaming, analytics, tests).

Why here: the jars (Kafka source, S3A) must reach Spark through `spark.jars` before the
JVM starts — no `--packages`, no Ivy, nothing downloaded at run time — and S3A needs the
same endpoint/encryption settings everywhere. `spark_conf()` is the single source of
that configuration; it also feeds the `spark-submit` command line built for Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.settings import Settings
from movesmart_dagster.spark_cds import archive_option

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_jars(settings: Settings) -> list[str]:
    jars = sorted(str(p) for p in settings.spark_jars_dir.glob("*.jar"))
    if not jars:
        raise RuntimeError(f"Spark connector jars missing in {settings.spark_jars_dir}: run `make setup`")
    return jars


# HotSpot's (JDK 17-25) defaults for tier 4 (C2) compilation
_C2_THRESHOLDS = {"Invocation": 5_000, "Compile": 15_000, "BackEdge": 40_000}


def driver_java_options(settings: Settings, cds: bool = True) -> str:
    """The driver JVM's options (in local mode, the JVM that runs everything).

    ParallelGC: on two cores G1's concurrent work cost the streaming catch-up ~6%
    (45.0/46.8 s vs 42.6/44.0 s on 3M events, interleaved runs); the driver heap is a few
    GB, so its pauses stay short next to a 10 s trigger.

    C2 thresholds x30: in a 3M-record catch-up the C2 compiler threads used ~15 s of CPU
    (of 2 cores x 28 s), compiling lukewarm Spark, Parquet and Kafka code. Raised, C2
    keeps to the really hot code — the per-record loops pass the thresholds within
    seconds — and the catch-up takes 24 s instead of 28 (interleaved runs; x10: 25.5 s,
    x100: erratic). Executors on a cluster keep the JVM's defaults.

    cds: map the class-data archive when there is one (`spark_cds`).
    """
    options = [
        "-Duser.timezone=UTC",
        "-XX:+UseParallelGC",
        *(f"-XX:Tier4{name}Threshold={30 * default}" for name, default in _C2_THRESHOLDS.items()),
    ]
    archive = archive_option(settings) if cds else None
    return " ".join([*options, archive] if archive else options)


def spark_conf(settings: Settings, app_name: str = "movesmart") -> dict[str, str]:
    """Every Spark setting we rely on, as `spark-submit --conf` pairs."""
    conf = {
        "spark.app.name": app_name,
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(spark_jars(settings)),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": driver_java_options(settings),
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
    if settings.s3_sse != "none":
        # server-side encryption of every object S3A writes (data, _spark_metadata, checkpoints)
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


def build_spark(
    settings: Settings, app_name: str = "movesmart", extra: dict[str, str] | None = None
) -> SparkSession:
    """A SparkSession configured from the settings (reuses the active one if there is one)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in {**spark_conf(settings, app_name), **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
