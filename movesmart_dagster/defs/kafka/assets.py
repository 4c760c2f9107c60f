"""The Kafka topics as external assets, observed with their end offsets.

Why observable sources: Dagster does not produce the topics (the simulator or real devices
do), but a person wants to see how much data arrived and how far behind the streaming job
is. One observation reads every topic's end offsets once and reports, per topic: the end
offset per partition, the total message count retained, and the lag of the streaming job
(end offsets minus the offsets its committed batches reached). The data version is the sum
of end offsets, so it changes exactly when new messages arrive.
"""

from typing import Any

import dagster as dg

from movesmart_dagster.defs.keys import GROUP_KAFKA, TOPIC_KEYS
from movesmart_dagster.defs.resources import KafkaResource, SparkResource, lag_per_topic
from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.schemas import RECORDS_BY_TOPIC


def topic_observations(
    ends: dict[str, dict[int, int]], committed: dict[str, dict[int, int]]
) -> list[tuple[dg.AssetKey, dg.DataVersion, dict[str, Any]]]:
    """Each topic's observation from its end offsets (`KafkaResource.end_offsets`) and the job's
    committed offsets: data version = records ever written, metadata = offsets and lag."""
    lags = lag_per_topic(ends, committed)
    out = []
    for topic, key in TOPIC_KEYS.items():
        parts = ends.get(topic, {})
        lag = lags.get(topic, 0)
        total = sum(parts.values())
        out.append(
            (
                key,
                dg.DataVersion(str(total)),
                {
                    "end_offsets": dg.MetadataValue.json({str(p): e for p, e in sorted(parts.items())}),
                    "partitions": len(parts),
                    "messages_total": total,
                    "streaming_lag": lag,
                },
            )
        )
    return out


@dg.multi_observable_source_asset(
    name="kafka_topics",
    specs=[
        dg.AssetSpec(
            key=key,
            group_name=GROUP_KAFKA,
            description=f"Kafka topic `{topic}`: {RECORDS_BY_TOPIC[topic].doc}, JSON values keyed by deviceId.",
            kinds={"kafka"},
            metadata={"topic": topic},
        )
        for topic, key in TOPIC_KEYS.items()
    ],
    description="Observe the end offsets of the Kafka topics and the streaming job's lag.",
)
def kafka_topics(kafka: KafkaResource, spark: SparkResource):
    committed = ProgressState.load(spark.settings().progress_log).committed_offsets()
    for key, version, metadata in topic_observations(kafka.end_offsets(TOPIC_KEYS), committed):
        yield dg.ObserveResult(asset_key=key, data_version=version, metadata=metadata)
