"""The Spark rules agree with the Python reference (`contract.validate`) on one corpus.

Real Spark (local, in this process) runs the job's routing on every payload of the corpus;
the verdicts must match the reference's reason for reason, and valid rows must carry the
reference's normalized values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from movesmart_dagster.contract import validate
from movesmart_dagster.schemas import RECORDS_BY_TOPIC, FieldType
from movesmart_dagster.settings import load_settings
from movesmart_dagster_tests.test_streaming_corpus import corpus

CAP = 4096


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list]:
    from pyspark.sql import SparkSession

    from movesmart_dagster.spark_session import build_spark
    from movesmart_dagster.streaming.job import JOB_SPARK_CONF
    from movesmart_dagster.streaming.validation import route

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    settings = load_settings(
        {"MOVESMART_HOME": str(tmp_path_factory.mktemp("v")), "MOVESMART_SPARK_MASTER": "local[2]"}
    )
    spark = build_spark(settings, "validation-test", extra=JOB_SPARK_CONF)
    try:
        items = [*corpus(), ("gps_data", b'{"id": "' + b"y" * CAP + b'"}')]
        kafka_ts = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
        df = spark.createDataFrame(
            [(t, 0, i, kafka_ts, v) for i, (t, v) in enumerate(items)],
            "topic string, partition int, offset long, timestamp timestamp, value binary",
        )
        rows = {r["kafka_offset"]: r.asDict(recursive=True) for r in route(df, CAP).collect()}
        yield [(t, v, rows[i]) for i, (t, v) in enumerate(items)]
    finally:
        spark.stop()


def _comparable(reason: str | None) -> str | None:
    """Reasons compare whole, except the printed value of out-of-range numbers (repr vs Java)."""
    if reason and reason.startswith("out_of_range:"):
        head, _, tail = reason.partition("=")
        return head + " " + tail.split(" not in ", 1)[1]
    return reason


def test_every_payload_gets_the_reference_verdict(routed: list) -> None:
    assert len(routed) > 600
    mismatches = []
    for topic, value, row in routed:
        expected = validate(RECORDS_BY_TOPIC[topic], value, max_bytes=CAP)
        if _comparable(expected.reason) != _comparable(row["reason"]):
            mismatches.append((topic, value[:100], expected.reason, row["reason"]))
    assert not mismatches, "\n".join(map(str, mismatches[:20]))


def test_out_of_range_details_print_like_python_for_usual_values(routed: list) -> None:
    same = differ = 0
    for topic, value, row in routed:
        expected = validate(RECORDS_BY_TOPIC[topic], value, max_bytes=CAP).reason
        if expected and expected.startswith("out_of_range"):
            if expected == row["reason"]:
                same += 1
            else:
                differ += 1
                assert "e+" in expected or "e-" in expected or len(expected.split("=")[1].split()[0]) > 15
    assert same > 30 and differ <= 3


def test_valid_rows_carry_the_reference_values(routed: list) -> None:
    checked = 0
    for topic, value, row in routed:
        record = RECORDS_BY_TOPIC[topic]
        verdict = validate(record, value, max_bytes=CAP)
        assert (row["_dest"] == record.table) == verdict.valid
        if not verdict.valid:
            assert row["_dest"] == "quarantine" and row["raw_value"] == value
            assert row["event_date"].isoformat() == "2024-01-02"  # the Kafka timestamp's day
            continue
        for f in record.fields:
            got, want = row[f"{record.table}__{f.name}"], verdict.row[f.name]
            if f.type is FieldType.TIMESTAMP:
                assert got.replace(tzinfo=UTC) == want
                assert row["event_date"] == want.date()
            else:
                assert got == want, (f.name, value)
        checked += 1
    assert checked > 100
