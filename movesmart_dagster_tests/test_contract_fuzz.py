"""The data contract fuzzed: Hypothesis payloads around the five record shapes.

Payloads start from a record of `schemas.py` and are bent: fields with mutated types,
missing, null, duplicated or extra; boundary values (each declared bound and the next
double beyond it); odd numbers (1e308, 1e309, -0.0, huge integers, NaN/Infinity tokens);
timestamps in every ISO-8601 form and none; odd Unicode (lone surrogates, NUL, non-BMP);
and, at the byte level, truncations, invalid UTF-8, NUL bytes, UTF-16/32, BOMs, glued
objects and stray whitespace.

Both forms apply the event-time rule (`contract.EventTimeRule`: from the start date to the
skew past the record's Kafka timestamp); valid timestamps are drawn mostly around its two
bounds, their edges to the microsecond included.

Two properties:
- the reference itself (`contract.validate`, pure Python, shrunk by Hypothesis on failure):
  never raises, answers a documented reason code, and every valid row can be handed to
  Spark (Arrow, the record's own types) and lies within the time rule — a str Arrow cannot
  encode once crashed the job;
- every path of the streaming job agrees with it: tens of thousands of generated payloads
  go through real Spark in one DataFrame — the SQL pre-checks (tombstone, size, UTF-8), the
  JVM fast path (`FastContract`: whenever it accepts, the reference must accept with the
  same values) and the whole routing (fast path, then the reference on the driver in
  chunks): the same verdict, reason and values for every payload.

CI time: ~20,000 cases are generated in bulk (Hypothesis without shrinking) and judged by
Spark in one pass; see `FUZZ_CASES`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from movesmart_dagster.contract import REASON_CODES, EventTimeRule, Verdict, validate
from movesmart_dagster.schemas import (
    LOCATION_FIELDS,
    RECORDS,
    RECORDS_BY_TOPIC,
    Field,
    FieldType,
    RecordSchema,
    arrow_table_schema,
)
from movesmart_dagster.settings import load_settings

CAP = 2048  # small, so the size cap is crossed too
RULE = EventTimeRule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1))
KAFKA_TS = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)  # every case's ingestion (Kafka timestamp)
FUZZ_CASES = int(os.environ.get("MOVESMART_FUZZ_CASES", "20000"))


# --- a JSON writer that can write what json.dumps will not --------------------------------
@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (NaN, 1e309, 5000-digit integers, `"\\ud800"`)."""

    text: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as ordered pairs: duplicate keys allowed."""

    pairs: tuple[tuple[str, Any], ...]


def dumps(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Obj):
        return "{" + ", ".join(f"{json.dumps(k)}: {dumps(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)  # -0.0, 1e+308 as Python writes them
    return json.dumps(value, ensure_ascii=False)


# --- values -------------------------------------------------------------------------------
ODD_NUMBERS = [
    "1e308", "1e309", "-1e309", "-0.0", "-0", "0", "1E2", "1e-400", "NaN", "Infinity", "-Infinity",
    "9007199254740993", "123456789012345678901234567890", "1" * 5000, "0.1e1", "2.5e-3", "1.0",
    "-1", "01", "1.", ".5", "+1", "0x10", "1e", "1_000",
]  # fmt: skip
odd_numbers = st.sampled_from([Raw(n) for n in ODD_NUMBERS])
odd_text = st.sampled_from(
    [
        Raw('"\\ud800"'), Raw('"a\\udfffb"'), Raw('"\\ud83d\\ude00"'), Raw('"\\u0000"'),
        "nul\x00inside", "\U0001f600", "e\u0301", "\u202e", "\ufeff", "12", "-1.5", "true", "null",
        "[1, 2]", "{}", "", " ", "\t\n",
    ]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    odd_numbers,
    odd_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(st.tuples(st.text(max_size=6), inner), max_size=3).map(lambda p: Obj(tuple(p))),
    ),
    max_leaves=6,
)


def _beyond(x: float, direction: float) -> float:
    return math.nextafter(x, direction)


def _number_values(f: Field) -> st.SearchStrategy[Any]:
    bounds = [b for b in (f.minimum, f.maximum) if b is not None]
    edges = [float(b) for b in bounds] + [_beyond(float(b), d) for b in bounds for d in (-math.inf, math.inf)]
    lo = f.minimum if f.minimum is not None else -1e6
    hi = f.maximum if f.maximum is not None else 1e6
    if f.type is FieldType.INT:
        return st.one_of(
            st.integers(min_value=int(lo) - 2, max_value=int(hi) + 2),
            st.integers(min_value=int(lo), max_value=int(hi)).map(float),
            st.sampled_from(edges),
            odd_numbers,
        )
    return st.one_of(
        st.floats(min_value=lo, max_value=hi),
        st.integers(min_value=int(lo), max_value=int(hi)),
        st.sampled_from(edges),
        st.floats(),  # NaN, infinities, 1e308: json.dumps-style tokens via repr
        odd_numbers,
    )


_TZ = st.one_of(
    st.none(),
    st.just(UTC),
    st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m))),
)
_DATETIMES = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=_TZ
)


_near_window = st.datetimes(
    # the simplest draw (Hypothesis favours it) is the start itself, naive: inside, on the edge
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2024, 1, 3),
    timezones=_TZ,
).map(lambda ts: ts if ts.tzinfo else ts.replace(tzinfo=UTC))
_US = timedelta(microseconds=1)
# each bound of the window and the microsecond on either side, shown in any offset
_window_edges = st.builds(
    lambda instant, tz: instant.astimezone(tz),
    st.sampled_from(
        [
            edge + d
            for edge in (RULE.start, KAFKA_TS + RULE.max_future_skew)
            for d in (-_US, timedelta(0), _US, timedelta(milliseconds=1))
        ]
    ),
    st.one_of(
        st.just(UTC),
        st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m))),
    ),
)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    ts: datetime = draw(_DATETIMES)
    form = draw(st.integers(0, 9))
    if form == 0:
        return ts.isoformat(sep=draw(st.sampled_from(["T", " ", "x", "t"])))
    if form == 1:
        spec = draw(st.sampled_from(["hours", "minutes", "seconds", "milliseconds", "microseconds"]))
        return ts.isoformat(timespec=spec)
    if form == 2:
        return ts.replace(tzinfo=None).isoformat() + draw(
            st.sampled_from(["Z", "z", "+00:00", "-00:00", "+0000"])
        )
    if form == 3:
        return ts.strftime("%Y%m%dT%H%M%S")
    if form == 4:
        return f"{ts.isocalendar().year:04d}-W{ts.isocalendar().week:02d}-{ts.isocalendar().weekday}"
    if form == 5:
        text = ts.isoformat()
        return text[: draw(st.integers(0, len(text)))]  # truncated
    if form == 6:
        return ts.replace(tzinfo=None).isoformat() + draw(
            st.sampled_from(["+24:00", "+23:59", "-23:59:59", "+05:30:15.5", "+5", "UTC", ".1234567", ",5"])
        )
    if form == 7:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + "1" * draw(st.integers(0, 10))
    if form == 8:
        return draw(st.sampled_from(["2024-02-30T00:00:00", "0000-01-01T00:00:00", "2024-01-01T24:00:00",
                                     "2024-13-01", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                     "2024-01-01T10.5", "٢٠٢٤-01-01", "2024-06-03T08:00:00\x00"]))  # fmt: skip
    return draw(json_values)


@st.composite
def locations(draw: st.DrawFn) -> Any:
    lat, lon = (draw(_number_values(f)) for f in LOCATION_FIELDS)
    form = draw(st.integers(0, 6))
    if form == 0:
        return Obj((("latitude", lat), ("longitude", lon)))
    if form == 1:
        return [lat, lon]
    if form == 2:
        return draw(st.lists(st.one_of(st.just(lat), json_values), max_size=4))
    if form == 3:
        extra = draw(
            st.lists(st.tuples(st.sampled_from(["latitude", "longitude", "alt"]), json_values), max_size=2)
        )
        return Obj((("latitude", lat), ("longitude", lon), *extra))
    if form == 4:
        return Obj((("longitude", lon),))
    return draw(json_values)


def _good_numbers(f: Field) -> st.SearchStrategy[Any]:
    lo = f.minimum if f.minimum is not None else 0
    hi = f.maximum if f.maximum is not None else 1e9
    if f.type is FieldType.INT:
        return st.integers(min_value=int(lo), max_value=int(hi))
    return st.one_of(st.floats(min_value=lo, max_value=hi), st.integers(min_value=int(lo), max_value=int(hi)))


def _number_kind(f: Field) -> str:
    return f"number{f.type.value}[{f.minimum},{f.maximum}]"


# one strategy per kind of value a payload is assembled from
KINDS: dict[str, st.SearchStrategy[Any]] = {
    "string": st.one_of(st.text(max_size=20), odd_text),
    "timestamp": timestamps(),
    "location": locations(),
    "any": json_values,
    "key": st.one_of(st.text(max_size=8), st.sampled_from([f.name for r in RECORDS for f in r.fields])),
    "junk": st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]),
    "binary": st.binary(max_size=40),
    "cut": st.floats(min_value=0, max_value=1),
    # values the contract accepts, in every accepted form: the fast path's ground
    # (the fast path leaves text beyond the BMP to the reference: valid, but not its ground)
    "good string": st.text(st.characters(max_codepoint=0xFFFF), max_size=20),
    "good timestamp": st.builds(
        lambda ts, sep, spec: ts.isoformat(sep=sep, timespec=spec),
        st.one_of(
            # around the time rule's window (most of them inside it), eight draws in ten
            *[_near_window] * 8,
            _window_edges,
            st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9998, 12, 30), timezones=_TZ),
        ),
        st.sampled_from(["T", " "]),
        st.sampled_from(["seconds", "milliseconds", "microseconds", "auto", "auto"]),
    ),
    "good location": st.builds(
        lambda lat, lon, as_array: [lat, lon] if as_array else Obj((("latitude", lat), ("longitude", lon))),
        *(st.floats(min_value=f.minimum, max_value=f.maximum) for f in LOCATION_FIELDS),
        st.booleans(),
    ),
    **{
        _number_kind(f): _number_values(f)
        for r in RECORDS
        for f in r.fields
        if f.type in (FieldType.DOUBLE, FieldType.INT)
    },
    **{
        "good " + _number_kind(f): _good_numbers(f)
        for r in RECORDS
        for f in r.fields
        if f.type in (FieldType.DOUBLE, FieldType.INT)
    },
}


def _kind(f: Field) -> str:
    match f.type:
        case FieldType.STRING | FieldType.TIMESTAMP | FieldType.LOCATION:
            return f.type.value
        case _:
            return _number_kind(f)


def assemble(value: Callable[[str], Any], pick: Callable[[Sequence[Any]], Any]) -> tuple[str, bytes | None]:
    """One payload around a record shape; `value(kind)` gives a value of a KINDS kind and
    `pick(options)` chooses — by Hypothesis draws, or from Hypothesis-drawn pools in bulk."""
    record: RecordSchema = pick(RECORDS)
    clean = pick([True, False])  # a valid record, perhaps with one thing bent
    pairs: list[tuple[str, Any]] = []
    for f in record.fields:
        fates = (
            ["good"] * 40 + ["value", "absent", "null"]
            if clean
            else ["good"] * 4 + ["value"] * 8 + ["absent", "null", "any", "twice"]
        )
        fate = pick(fates)
        if fate == "absent":
            continue
        kind = "good " + _kind(f) if fate == "good" else "any" if fate == "any" else _kind(f)
        pairs.append((f.name, None if fate == "null" else value(kind)))
        if fate == "twice":
            pairs.append((f.name, value(_kind(f))))
    for _ in range(pick([0, 0, 0, 1, 2])):
        pairs.append((value("key"), value("any")))
    if pick([False, False, True]):
        pairs.reverse()
    text = dumps(Obj(tuple(pairs)))
    data = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate: invalid UTF-8
    how = pick(["as is"] * (30 if clean else 10) + ["truncate", "bytes", "encode", "wrap", "other"])
    if how == "truncate":
        data = data[: int(value("cut") * len(data))]
    elif how == "bytes":
        at = int(value("cut") * len(data))
        data = data[:at] + value("junk") + data[at:]
    elif how == "encode":
        data = pick(
            [
                text.encode("utf-16-le", "surrogatepass"),
                text.encode("utf-16", "surrogatepass"),
                text.encode("utf-32-be", "surrogatepass"),
                b"\xef\xbb\xbf" + data,
            ]
        )
    elif how == "wrap":
        pad = pick([" ", "\n\t", "\x0c", "\u00a0", "\r"]).encode()
        data = pick([pad + data + pad, data + data, b"[" + data + b"]", data + b"x", data + b"\x00"])
    elif how == "other":
        other = pick([dumps(value("any")).encode("utf-8", "surrogatepass"), value("binary")])
        data = pick([other, b"", None, b"x" * (CAP + 1), b'{"id": "' + b"y" * CAP + b'"}'])
    return record.topic, data


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes | None]:
    """A payload drawn value by value (shrinkable)."""
    return assemble(lambda kind: draw(KINDS[kind]), lambda options: draw(st.sampled_from(options)))


def bulk_payloads(n: int, pools: int = 400, seed: int = 20261203) -> list[tuple[str, bytes | None]]:
    """n payloads: Hypothesis draws `pools` values of every kind (one example each), then
    a seeded random assembles n payloads from them — Hypothesis costs ~0.5 ms a draw, far
    too slow to draw tens of thousands of payloads one by one."""
    import random

    pool: dict[str, list[Any]] = {k: [] for k in KINDS}

    @settings(
        max_examples=pools,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.fixed_dictionaries(KINDS))
    def collect(values: dict[str, Any]) -> None:
        for k, v in values.items():
            pool[k].append(v)

    collect()
    rng = random.Random(seed)
    return [assemble(lambda kind: rng.choice(pool[kind]), rng.choice) for _ in range(n)]


# --- the reference's own properties (shrunk on failure) ---------------------------------------
@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    payloads(),
    st.sampled_from([KAFKA_TS, datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)]),
)
def test_the_reference_never_raises_and_every_valid_row_can_be_stored(
    case: tuple[str, bytes | None], ingested_at: datetime
) -> None:
    import pyarrow as pa

    topic, data = case
    record = RECORDS_BY_TOPIC[topic]
    verdict = validate(record, data, CAP, RULE, ingested_at)
    if not verdict.valid:
        assert verdict.row is None and verdict.code in REASON_CODES
        assert verdict.reason.encode("utf-8")  # a reason is storable text
        return
    assert data is not None and len(data) <= CAP
    event_time = verdict.row[record.event_time_field]
    assert RULE.start <= event_time and (
        ingested_at.year == 9999 or event_time <= ingested_at + RULE.max_future_skew
    )
    schema = arrow_table_schema(record.table)
    row = {f.name: verdict.row[f.name] for f in record.fields}
    pa.Table.from_pylist([row], schema=pa.schema([schema.field(f.name) for f in record.fields]))
    assert (
        validate(record, data.decode("utf-8"), None, RULE, ingested_at) == verdict
    )  # bytes or text: one verdict


# --- every path of the job against the reference, through real Spark --------------------------
@pytest.fixture(scope="module")
def cases() -> list[tuple[str, bytes | None]]:
    out = bulk_payloads(FUZZ_CASES)
    assert len(set(out)) > FUZZ_CASES * 0.8  # mostly distinct
    return out


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from pyspark.sql import SparkSession

    from movesmart_dagster.spark_session import build_spark
    from movesmart_dagster.streaming.source import JOB_SPARK_CONF

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    settings_ = load_settings(
        {"MOVESMART_HOME": str(tmp_path_factory.mktemp("fuzz")), "MOVESMART_SPARK_MASTER": "local[2]"}
    )
    session = build_spark(settings_, "contract-fuzz", extra=JOB_SPARK_CONF)
    try:
        yield session
    finally:
        session.stop()


def _kafka_frame(spark, cases: list[tuple[str, bytes | None]]):  # noqa: ANN001, ANN202 - pyspark types
    import pyarrow as pa

    table = pa.table(
        {
            "topic": [t for t, _ in cases],
            "partition": pa.array([0] * len(cases), pa.int32()),
            "offset": pa.array(range(len(cases)), pa.int64()),
            "timestamp": pa.array([KAFKA_TS] * len(cases), pa.timestamp("us", "UTC")),
            "value": pa.array([v for _, v in cases], pa.binary()),
        }
    )
    return spark.createDataFrame(table)


def _same_value(got: Any, want: Any, f: Field) -> bool:
    if f.type is FieldType.TIMESTAMP:
        return got is not None and got.replace(tzinfo=UTC) == want
    if f.type is FieldType.LOCATION and want is not None:
        return got is not None and all(_same_value(got[k], want[k], LOCATION_FIELDS[0]) for k in want)
    if isinstance(want, float):  # -0.0 stays -0.0
        return isinstance(got, float) and got == want and math.copysign(1, got) == math.copysign(1, want)
    return got == want and type(got) is type(want)


@pytest.fixture(scope="module")
def verdicts(cases: list[tuple[str, bytes | None]]) -> list[Verdict]:
    return [validate(RECORDS_BY_TOPIC[t], v, CAP, RULE, KAFKA_TS) for t, v in cases]


@pytest.fixture(scope="module")
def first_pass(spark, cases):  # noqa: ANN001, ANN201 - pyspark types
    """The cases after the job's first pass (pre-checks, FastContract), cached: the second
    pass reads them from the cache, as in the job."""
    from movesmart_dagster.streaming.validation.fast_contract import register_fast_contract
    from movesmart_dagster.streaming.validation.fast_path import route_fast, unpack

    register_fast_contract(spark, RULE)
    routed = unpack(route_fast(_kafka_frame(spark, cases), CAP)).cache()
    yield routed
    routed.unpersist()


def _mismatches(
    rows: list[dict], cases: list[tuple[str, bytes | None]], verdicts: list[Verdict]
) -> list[tuple]:
    from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST

    bad = []
    for row in rows:
        topic, data = cases[row["kafka_offset"]]
        record = RECORDS_BY_TOPIC[topic]
        verdict = verdicts[row["kafka_offset"]]
        if row["_dest"] == EXACT_DEST:
            continue
        if verdict.valid:
            if row["_dest"] != record.table:
                bad.append((topic, data, "reference: valid", row["_dest"], row["reason"]))
                continue
            for f in record.fields:
                got = row[f"{record.table}__{f.name}"]
                if not _same_value(got, verdict.row[f.name], f):
                    bad.append((topic, data, f.name, verdict.row[f.name], got))
        elif (row["_dest"], row["reason"]) != ("quarantine", verdict.reason):
            bad.append((topic, data, verdict.reason, row["_dest"], row["reason"]))
    return bad


def test_the_fast_path_and_the_pre_checks_agree_with_the_reference(first_pass, cases, verdicts) -> None:  # noqa: ANN001
    """What the first pass decides (pre-checks: quarantine; FastContract: a table), the
    reference decides the same way, values included."""
    from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST

    rows = first_pass.toArrow().to_pylist()
    assert len(rows) == len(cases)
    bad = _mismatches(rows, cases, verdicts)
    assert not bad, "\n".join(map(repr, bad[:10]))
    by_dest: dict[str, int] = {}
    for row in rows:
        by_dest[row["_dest"]] = by_dest.get(row["_dest"], 0) + 1
    # not a vacuous pass: the fast path accepted thousands, the pre-checks decided hundreds
    # (fewer than before the time rule: a share of the well-formed records is out of its window)
    assert sum(n for d, n in by_dest.items() if d.endswith("_data")) > len(cases) // 20, by_dest
    assert by_dest["quarantine"] > len(cases) // 50 and by_dest[EXACT_DEST] > len(cases) // 4, by_dest


def test_the_whole_routing_gives_the_reference_verdict_reason_and_values(first_pass, cases, verdicts) -> None:  # noqa: ANN001
    """Both passes, the second in chunks of 5,000 records: every payload as the reference says."""
    from movesmart_dagster.streaming.validation.exact_path import reroute_exact, with_exact
    from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST

    routed = with_exact(first_pass, reroute_exact(first_pass, CAP, RULE, chunk_rows=5000))
    rows = routed.toArrow().to_pylist()
    assert sorted(r["kafka_offset"] for r in rows) == list(range(len(cases)))  # each once
    assert not [r for r in rows if r["_dest"] == EXACT_DEST]
    bad = _mismatches(rows, cases, verdicts)
    assert not bad, "\n".join(map(repr, bad[:10]))
    valid = sum(1 for v in verdicts if v.valid)
    assert len(cases) // 10 < valid < len(cases) * 9 // 10  # both verdicts well represented
    # the time rule is exercised on both sides: hundreds of well-formed records out of its window
    out_of_time = sum(1 for v in verdicts if v.reason and v.reason.startswith("out_of_range: timestamp="))
    assert out_of_time > len(cases) // 50, out_of_time
