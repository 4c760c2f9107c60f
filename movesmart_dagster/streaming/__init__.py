"""The Spark Structured Streaming job: Kafka -> validated, partitioned Parquet tables."""
