"""The local stack: a real Kafka broker (KRaft) and an S3-compatible endpoint as plain processes."""
