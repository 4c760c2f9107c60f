"""The floor under any Spark job on this machine: start Spark, read every Kafka record once.

For the benchmark only. No parse, no validation, no write: the session (with the same
jars and settings as the streaming job) reads the five topics from the earliest to the
latest offsets, counts the records and prints the count. Whatever a real job does costs
more than this, so `events / floor seconds` bounds the catch-up throughput that any
Spark-and-Kafka implementation can reach here, whole process.

    python bench/floor_job.py   # settings from the environment, like `movesmart stream`
"""

from __future__ import annotations

import sys
from functools import reduce
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from movesmart_dagster.schemas import TOPICS  # noqa: E402
from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.spark_session import build_spark  # noqa: E402
from movesmart_dagster.streaming.source import KAFKA_READ_OPTIONS  # noqa: E402


def main() -> int:
    settings = load_settings()
    spark = build_spark(settings, "movesmart-floor")
    try:
        frames = [
            spark.read.format("kafka")
            .options(**KAFKA_READ_OPTIONS)  # as the streaming job
            .options(**settings.spark_kafka_options())
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .load()
            .select("value")
            for topic in TOPICS
        ]
        print(reduce(lambda a, b: a.union(b), frames).count())
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
