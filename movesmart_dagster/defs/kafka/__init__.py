"""The five Kafka topics as observable source assets."""
