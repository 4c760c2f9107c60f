"""The Kafka integration's definitions: the topics as observable sources and the lag check."""

import dagster as dg

from movesmart_dagster.defs.kafka.assets import kafka_topics
from movesmart_dagster.defs.kafka.lag import kafka_consumer_lag


def definitions() -> dg.Definitions:
    return dg.Definitions(assets=[kafka_topics], asset_checks=[kafka_consumer_lag])
