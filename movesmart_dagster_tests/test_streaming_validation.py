"""The job's routing agrees with the Python reference (`contract.validate`) on one corpus.

Real Spark (local, in this process) runs the job's routing (SQL pre-checks, the JVM fast
path, the reference on the driver) on every payload of the corpus; the verdicts must match
the reference's reason text for reason text, and valid rows must carry the reference's
normalized values. Both forms apply the event-time rule (`contract.EventTimeRule`: from the
start date to the skew past the Kafka timestamp): each row carries its own Kafka timestamp,
and the edges of the rule are payloads of their own (`_time_rule_edges`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from movesmart_dagster.contract import EventTimeRule, Verdict, validate
from movesmart_dagster.schemas import RECORDS, RECORDS_BY_TOPIC, FieldType
from movesmart_dagster.settings import load_settings
from movesmart_dagster_tests.test_streaming_corpus import corpus, good_record

CAP = 4096
RULE = EventTimeRule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1))
KAFKA_TS = datetime(2024, 8, 12, 11, 0, 0, 500000, tzinfo=UTC)  # the corpus' good records are ~10:00 that day


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from pyspark.sql import SparkSession

    from movesmart_dagster.spark_session import build_spark
    from movesmart_dagster.streaming.source import JOB_SPARK_CONF

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    settings = load_settings(
        {"MOVESMART_HOME": str(tmp_path_factory.mktemp("v")), "MOVESMART_SPARK_MASTER": "local[2]"}
    )
    session = build_spark(settings, "validation-test", extra=JOB_SPARK_CONF)
    try:
        yield session
    finally:
        session.stop()


def _fast_path_edges() -> list[tuple[str, bytes]]:
    """Payloads aimed at the JVM fast path's shortcuts: each must get the reference verdict."""
    base = b'{"id": "a1", "deviceId": "V-7", "timestamp": %s, "speed": %s, "direction": "N", "vehicleType": "bus"%s}'
    ts = [
        "2024-08-12T10:00:30",
        "2024-08-12 10:00:30",
        "2024-08-12T10:00:30.1",
        "2024-08-12T10:00:30.123456",
        "2024-08-12T10:00:30.1234567",
        "2024-08-12T10:00:30Z",
        "2024-08-12T10:00:30z",
        "2024-08-12T10:00:30+23:59",
        "2024-08-12T10:00:30-00:30",
        "2024-08-12T10:00:30+24:00",
        "2024-02-29T00:00:00",
        "2023-02-29T00:00:00",
        "2024-08-12T24:00:00",
        "2024-08-12T10:60:00",
        "2024-08-12T10:00:60",
        "0999-08-12T10:00:30",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "2024-08-12T10:00:30+0200",
        "2024-08-12x10:00:30",
        "2024-8-12T10:00:30",
        "\u0032024-08-12T10:00:30",
        "2024-08-12T10:00:30.",
        "2024-08-12T10:00",
    ]
    out = [base % (json.dumps(t).encode(), b"10", b"") for t in ts]
    for speed in [
        b"0",
        b"300",
        b"300.0000001",
        b"-0.0",
        b"1e2",
        b"1E400",
        b"12345678901234567890",
        b"true",
        b'"5"',
        b"9007199254740993",
        b"NaN",
        b"Infinity",
        b"-1",
        b"0.5e-400",
    ]:
        out.append(base % (b'"2024-08-12T10:00:30"', speed, b""))
    for extra in [
        b', "x": {"y": 1}',
        b', "x": [1, 2]',
        b', "x": null',
        b', "speed": 11',
        b', "id": "a2"',
        b', "id": null',
        b', "x": "\\ud800"',
        b', "direction": "\\ud83d\\ude00"',
        b', "direction": "\\ud800"',  # a lone surrogate: no table can store it
        b', "direction": "a\\udfffb"',
    ]:
        out.append(base % (b'"2024-08-12T10:00:30"', b"10", extra))
    good = base % (b'"2024-08-12T10:00:30"', b"10", b"")
    out += [
        b"\xef\xbb\xbf" + good,
        good + b" ",
        good + b"\n\t",
        good + b" x",
        good + good,  # two glued objects
        good.decode().encode("utf-16-le"),  # UTF-16 without a BOM: Jackson would detect it
        good.decode().encode("utf-32-be"),
        b" " + good,
        good.replace(b'"V-7"', b'"V-\\u0037"'),
        good.replace(b'"N"', b'"\\u0000"'),
        good.replace(b'"N"', b'"a\tb"'),
    ]
    items = [("gps_data", v) for v in out]
    # location and ints (vehicle: location object/array, year int)
    veh = (
        b'{"id": "v", "deviceId": "d", "timestamp": "2024-08-12T10:00:30", "location": %s, "speed": 1, '
        b'"direction": "N", "make": "m", "model": "m", "year": %s, "fuelType": "f"}'
    )
    for loc in [
        b'{"latitude": 1, "longitude": 2}',
        b"[1, 2]",
        b"[1, 2, 3]",
        b"[1]",
        b"[]",
        b'{"latitude": 91, "longitude": 2}',
        b'{"latitude": 1, "longitude": 2, "latitude": 3}',
        b'{"latitude": 1, "longitude": 2, "alt": {"a": 1}}',
        b'{"latitude": 1, "longitude": 2, "alt": 5}',
        b'{"latitude": 1}',
        b'{"latitude": "1", "longitude": 2}',
        b"[1, true]",
        b"null",
        b'"1,2"',
        b"[[1], 2]",
        b'{"latitude": 1, "longitude": -180.0}',
    ]:
        items.append(("vehicle_data", veh % (loc, b"2020")))
    for year in [b"2020.0", b"2020.5", b"1e3", b"2147483648", b"-0", b"null", b'"2020"']:
        items.append(("vehicle_data", veh % (b"[1, 2]", year)))
    return items


def _time_rule_edges() -> list[tuple[str, bytes, datetime]]:
    """(topic, payload, Kafka timestamp) at the edges of the event-time rule, in every record
    type: each side of the start date and of the skew past ingestion, written with and without
    offsets — payloads the fast path would accept but for their time."""
    k = datetime(2024, 8, 12, 11, 0, 0, 123000, tzinfo=UTC)
    cases = [
        ("2024-01-01T00:00:00", k),  # the start itself: valid
        ("2024-01-01T00:00:00Z", k),
        ("2024-01-01T01:00:00+01:00", k),
        ("2023-12-31T23:00:00-01:00", k),
        ("2023-12-31T23:59:59.999999", k),  # 1 µs before the start
        ("2024-01-01T00:59:59.999999+01:00", k),
        ("2023-06-01T00:00:00Z", k),
        ("2024-08-13T11:00:00.123", k),  # exactly the skew past ingestion: valid
        ("2024-08-13T12:00:00.123+01:00", k),
        ("2024-08-13T11:00:00.123001", k),  # 1 µs beyond it
        ("2024-08-13T11:00:00.124Z", k),
        ("2024-08-13T11:00:00.123", k - timedelta(milliseconds=1)),  # the same text, 1 ms earlier ingestion
        ("2024-08-13T11:00:00.123", datetime(1970, 1, 1, tzinfo=UTC)),  # a producer without a clock
        ("2024-08-12T10:00:00", datetime(2024, 8, 11, 10, 0, 0, tzinfo=UTC)),  # exactly 1 day ahead
        ("2024-08-12T10:00:00", datetime(2024, 8, 11, 9, 59, 59, 999000, tzinfo=UTC)),
        ("9998-12-31T23:59:59", k),
    ]
    out = []
    for topic, good in ((r.topic, good_record(r.name)) for r in RECORDS):
        for text, ingested in cases:
            out.append((topic, json.dumps({**good, "timestamp": text}).encode(), ingested))
    return out


ITEMS: list[tuple[str, bytes, datetime]] = [
    *(
        (t, v, KAFKA_TS)
        for t, v in [*corpus(), ("gps_data", b'{"id": "' + b"y" * CAP + b'"}'), *_fast_path_edges()]
    ),
    *_time_rule_edges(),
]


def _reference(topic: str, value: bytes | None, kafka_ts: datetime) -> Verdict:
    return validate(RECORDS_BY_TOPIC[topic], value, CAP, RULE, kafka_ts)


@pytest.fixture(scope="module")
def kafka_rows(spark):  # noqa: ANN001, ANN201 - pyspark types
    return spark.createDataFrame(
        [(t, 0, i, ts, v) for i, (t, v, ts) in enumerate(ITEMS)],
        "topic string, partition int, offset long, timestamp timestamp, value binary",
    )


# the streaming job's way: the JVM fast path, then `contract.validate` on the driver for the
# rows it cannot vouch for — in one chunk, or in many small ones (the verdicts must not
# depend on how a batch is cut)
@pytest.fixture(scope="module", params=["one_chunk", "chunks_of_50"])
def routed(request: pytest.FixtureRequest, kafka_rows) -> list:  # noqa: ANN001
    from movesmart_dagster.streaming.validation import route

    chunk_rows = 50 if request.param == "chunks_of_50" else 50_000
    out = route(kafka_rows, CAP, RULE, chunk_rows=chunk_rows).collect()
    rows = {r["kafka_offset"]: r.asDict(recursive=True) for r in out}
    assert len(out) == len(rows) == len(ITEMS)  # one row per record, none twice
    return [(t, v, ts, rows[i]) for i, (t, v, ts) in enumerate(ITEMS)]


def test_fast_pass_decides_plain_rows_and_leaves_the_rest(kafka_rows) -> None:  # noqa: ANN001
    from movesmart_dagster.streaming.validation.fast_contract import register_fast_contract
    from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST, route_fast

    register_fast_contract(kafka_rows.sparkSession, RULE)
    fast = route_fast(kafka_rows, CAP)
    by_dest = {r["_dest"]: r["count"] for r in fast.groupBy("_dest").count().collect()}
    assert sum(by_dest.values()) == len(ITEMS)
    # the corpus is mostly odd payloads: most go the exact way; plainly valid rows are
    # decided by the JVM fast path, size/UTF-8/tombstone verdicts need no parse at all
    assert 0 < by_dest[EXACT_DEST] < len(ITEMS)
    assert by_dest.get("quarantine", 0) > 0 and sum(n for d, n in by_dest.items() if d.endswith("_data")) > 0
    # the exact path gets the bytes as received
    assert fast.where((fast._dest == EXACT_DEST) & fast.raw_value.isNotNull()).count() == by_dest[EXACT_DEST]


def test_every_payload_gets_the_reference_verdict(routed: list) -> None:
    assert len(routed) > 600
    mismatches = []
    for topic, value, kafka_ts, row in routed:
        expected = _reference(topic, value, kafka_ts)
        if expected.reason != row["reason"]:
            mismatches.append((topic, value[:60], value[-30:], expected.reason, row["reason"]))
    assert not mismatches, "\n".join(map(str, mismatches[:20]))


def test_valid_rows_carry_the_reference_values(routed: list) -> None:
    checked = 0
    for topic, value, kafka_ts, row in routed:
        record = RECORDS_BY_TOPIC[topic]
        verdict = _reference(topic, value, kafka_ts)
        assert (row["_dest"] == record.table) == verdict.valid
        if not verdict.valid:
            assert row["_dest"] == "quarantine" and row["raw_value"] == value
            assert row["event_date"] == kafka_ts.date()  # the Kafka timestamp's day
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


def test_the_event_time_rule_is_applied_by_both_passes_alike(routed: list) -> None:
    """The rule's edges: the fast path accepts the ones inside (it decides them, no second
    pass needed), and the ones outside reach quarantine with the reference's reason."""
    wanted = set(_time_rule_edges())
    edges = [(t, v, ts, row) for t, v, ts, row in routed if (t, v, ts) in wanted]
    assert len(edges) == len(wanted) == 5 * 16
    out = [row["reason"] for *_, row in edges if row["_dest"] == "quarantine"]
    before = [
        r for r in out if re.fullmatch(r"out_of_range: timestamp=\S+ is before the start date 2024-01-01", r)
    ]
    ahead = r"out_of_range: timestamp=\S+ is more than P1D ahead of its ingestion at \S+"
    beyond = [r for r in out if re.fullmatch(ahead, r)]
    # per record: 3 before the start, 6 beyond the skew, nothing else
    assert (len(before), len(beyond), len(out)) == (5 * 3, 5 * 6, 5 * 9), out
    valid = [row for *_, row in edges if row["_dest"] != "quarantine"]
    assert len(valid) == 5 * 7 and all(row["event_date"] >= datetime(2024, 1, 1).date() for row in valid)


def test_the_fast_path_leaves_out_of_time_records_to_the_reference(kafka_rows) -> None:  # noqa: ANN001
    """It never rejects: a record outside the rule is undecided there, never a table row."""
    from movesmart_dagster.streaming.validation.fast_contract import register_fast_contract
    from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST, route_fast

    register_fast_contract(kafka_rows.sparkSession, RULE)
    fast = {
        r["kafka_offset"]: r["_dest"]
        for r in route_fast(kafka_rows, CAP).select("kafka_offset", "_dest").collect()
    }
    first = len(ITEMS) - len(_time_rule_edges())
    for i, (topic, value, ts) in enumerate(ITEMS[first:], start=first):
        verdict = _reference(topic, value, ts)
        assert fast[i] == (RECORDS_BY_TOPIC[topic].table if verdict.valid else EXACT_DEST), (value, ts)


def test_the_batch_timestamp_is_exact_and_compiled_once(spark) -> None:
    """Each batch stamps its rows' `ingested_at` (`batch_timestamp_sql`): every row gets the exact
    instant, and a later batch at another instant reuses the generated code (an inlined literal
    made every batch compile its own)."""
    from movesmart_dagster.streaming.projection import batch_timestamp_sql

    compilations = (
        spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    )
    rows = spark.range(0, 1000, 1, 4).selectExpr("id", "id * 2 AS twice")
    first = datetime(2026, 12, 4, 23, 50, 1, 123456, tzinfo=UTC)
    for n, at in enumerate([first + timedelta(seconds=2 * i, microseconds=i) for i in range(4)]):
        before = compilations.getCount()
        stamped = rows.where("id % 3 = 0").selectExpr(
            "id", "twice", f"{batch_timestamp_sql(at)} AS ingested_at"
        )
        got = stamped.collect()
        assert len(got) == 334 and {r["ingested_at"] for r in got} == {at.replace(tzinfo=None)}, at
        if n:
            assert compilations.getCount() == before, f"batch {n} compiled code again"
