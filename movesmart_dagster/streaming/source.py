"""The streaming job's Spark settings and its Kafka source.

Why together and apart from the batch code: they are how the job reads — one Kafka source
subscribed to the five topics (one offset fetch per trigger, one scan) with the session
settings that reading and the cached batch need — and they change with Spark and Kafka
tuning, not with what a batch does with its rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.schemas import TOPICS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from movesmart_dagster.settings import Settings

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


def kafka_source(spark: SparkSession, settings: Settings, max_offsets_per_trigger: int | None) -> DataFrame:
    """The five topics through one Kafka source: one offset fetch per trigger, one scan."""
    reader = (
        spark.readStream.format("kafka")
        .options(**KAFKA_READ_OPTIONS)
        .options(**settings.spark_kafka_options())
        .option("subscribe", ",".join(TOPICS))
        .option("startingOffsets", "earliest")
        .option("kafka.max.partition.fetch.bytes", str(8 << 20))
        .option("includeHeaders", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    return reader.load()
