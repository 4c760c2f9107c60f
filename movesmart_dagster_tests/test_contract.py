"""The data contract (`movesmart_dagster.contract.validate`): one test per reason code.

Payloads are written the way the seed's producers wrote them (Python dicts through
`json.dumps` with default separators, `location` as a tuple -> JSON array, naive
`datetime.isoformat()` timestamps), plus the canonical form the simulator sends.
Range tests are generated from the `Field`s in `schemas`, so a new bound is tested
the moment it is declared.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from movesmart_dagster import contract
from movesmart_dagster.contract import REASON_CODES, validate
from movesmart_dagster.schemas import GPS, LOCATION_FIELDS, RECORDS, TRAFFIC, VEHICLE, WEATHER

NOW = "2024-06-03T08:15:30.123456"  # what datetime.now().isoformat() gave the seed


def seed_payloads() -> dict[str, dict]:
    """One record per type exactly as the seed's generate_*_data functions built them."""
    loc = (51.5074, -0.1278)
    return {
        "vehicle": {
            "id": str(uuid.uuid4()),
            "deviceId": "Vehicle-CodeWithYu-123",
            "timestamp": NOW,
            "location": loc,
            "speed": 27.4,
            "direction": "North-East",
            "make": "BMW",
            "model": "C500",
            "year": 2024,
            "fuelType": "Hybrid",
        },
        "gps": {
            "id": str(uuid.uuid4()),
            "deviceId": "Vehicle-CodeWithYu-123",
            "timestamp": NOW,
            "speed": 31.9,
            "direction": "North-East",
            "vehicleType": "private",
        },
        "traffic": {
            "id": str(uuid.uuid4()),
            "deviceId": "Vehicle-CodeWithYu-123",
            "cameraId": "Nikon-Cam123",
            "location": loc,
            "timestamp": NOW,
            "snapshot": "Base64EncodedString",
        },
        "weather": {
            "id": str(uuid.uuid4()),
            "deviceId": "Vehicle-CodeWithYu-123",
            "location": loc,
            "timestamp": NOW,
            "temperature": 14.2,
            "weatherCondition": "Sunny",
            "precipitation": 3.1,
            "windSpeed": 42.0,
            "humidity": 67,  # the seed sent random.randint: an integer
            "airQualityIndex": 123.4,
        },
        "emergency": {
            "id": str(uuid.uuid4()),
            "deviceId": "Vehicle-CodeWithYu-123",
            "incidentId": str(uuid.uuid4()),
            "type": "None",  # the seed's "no incident" value
            "timestamp": NOW,
            "location": loc,
            "status": "Active",
            "description": "Description of the incident",
        },
    }


SCHEMA = {r.name: r for r in RECORDS}
ALL = [r.name for r in RECORDS]


def _dumps(doc: object) -> bytes:
    return json.dumps(doc).encode("utf-8")  # the seed's json.dumps, default separators


def _code(name: str, payload: bytes | str) -> str | None:
    return validate(SCHEMA[name], payload).code


# --- accepted ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_seed_payloads_are_accepted_and_normalised(name):
    doc = seed_payloads()[name]
    verdict = validate(SCHEMA[name], _dumps(doc))
    assert verdict.valid, verdict.reason
    assert list(verdict.row) == SCHEMA[name].field_names
    assert verdict.row["timestamp"] == datetime(2024, 6, 3, 8, 15, 30, 123456, tzinfo=UTC)  # naive = UTC
    if "location" in doc:
        assert verdict.row["location"] == {"latitude": 51.5074, "longitude": -0.1278}


@pytest.mark.parametrize(
    "condition", ["Sunny", "Cloudy", "Rain", "Snow", "clear sky", "light intensity drizzle"]
)
def test_free_text_weather_conditions_are_valid(condition):
    doc = {**seed_payloads()["weather"], "weatherCondition": condition}
    assert validate(WEATHER, _dumps(doc)).row["weatherCondition"] == condition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-06-03T08:15:30", datetime(2024, 6, 3, 8, 15, 30, tzinfo=UTC)),
        ("2024-06-03T08:15:30Z", datetime(2024, 6, 3, 8, 15, 30, tzinfo=UTC)),
        ("2024-06-03T08:15:30.5+00:00", datetime(2024, 6, 3, 8, 15, 30, 500000, tzinfo=UTC)),
        ("2024-06-03T10:15:30+02:00", datetime(2024, 6, 3, 8, 15, 30, tzinfo=UTC)),
        ("2024-06-03 08:15:30", datetime(2024, 6, 3, 8, 15, 30, tzinfo=UTC)),
    ],
)
def test_iso_timestamps_with_or_without_offset(text, expected):
    doc = {**seed_payloads()["gps"], "timestamp": text}
    ts = validate(GPS, _dumps(doc)).row["timestamp"]
    assert ts == expected and ts.utcoffset() == timedelta(0)


def test_canonical_location_object_extra_fields_and_absent_optionals():
    doc = {
        "id": "x",
        "deviceId": "d",
        "timestamp": datetime(2024, 6, 3, 8, tzinfo=timezone(timedelta(hours=1))).isoformat(),
        "location": {"latitude": -33.9, "longitude": 151.2, "altitude": 12},
        "firmware": "1.2.3",  # unknown extra field: ignored
        "speed": None,  # optional and null: fine
    }
    verdict = validate(VEHICLE, json.dumps(doc, separators=(",", ":")))
    assert verdict.valid, verdict.reason
    assert verdict.row["location"] == {"latitude": -33.9, "longitude": 151.2}
    assert verdict.row["speed"] is None and verdict.row["make"] is None and "firmware" not in verdict.row
    assert verdict.row["timestamp"] == datetime(2024, 6, 3, 7, tzinfo=UTC)


def test_integers_are_numbers_and_whole_doubles_are_integers():
    doc = {**seed_payloads()["vehicle"], "speed": 40, "year": 2024.0}
    row = validate(VEHICLE, _dumps(doc)).row
    assert row["speed"] == 40.0 and isinstance(row["speed"], float)
    assert row["year"] == 2024 and isinstance(row["year"], int)


# --- rejected: one test per reason code ----------------------------------------------------
def test_reason_codes_are_the_documented_ones():
    doc = contract.__doc__ or ""
    assert all(f"`{code}`" in doc for code in REASON_CODES)


@pytest.mark.parametrize(
    "payload",
    [
        b"hello",
        b'{"id": "a", "deviceId": "d"',  # cut off
        b"\xff\xfe\x00garbage",  # not UTF-8
        json.dumps(seed_payloads()["gps"]).encode("utf-16"),  # valid JSON, wrong encoding
        b"",
        b"{'id': 'single quotes'}",
        b"[" * 100_000,  # absurd nesting must not crash the validator
    ],
)
def test_not_json(payload):
    verdict = validate(GPS, payload)
    assert verdict.code == "not_json" and verdict.row is None


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b'"a string"', b"null", b"true"])
def test_not_object(payload):
    assert _code("gps", payload) == "not_object"


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("required", ["id", "deviceId", "timestamp"])
@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_required(name, required, how):
    doc = seed_payloads()[name]
    if how == "absent":
        del doc[required]
    else:
        doc[required] = None
    verdict = validate(SCHEMA[name], _dumps(doc))
    assert verdict.code == "missing_required" and required in verdict.reason


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("vehicle", "speed", "27.4"),  # a string where a number is expected
        ("vehicle", "speed", True),  # a bool is not a number
        ("vehicle", "year", 2024.5),  # not an integer
        ("vehicle", "year", "2024"),
        ("vehicle", "make", 7),  # a number where a string is expected
        ("gps", "id", 12345),
        ("gps", "speed", 10**400),  # an integer too large for a double
        ("traffic", "location", [51.5]),
        ("traffic", "location", [51.5, -0.1, 3.0]),
        ("traffic", "location", ["51.5", "-0.1"]),
        ("weather", "location", "London"),
        ("weather", "location", {"lat": 51.5, "lon": -0.1}),
        ("weather", "humidity", [67]),
        ("emergency", "status", False),
        ("emergency", "timestamp", 1717402530),  # epoch seconds, not ISO text
    ],
)
def test_wrong_type(name, field, value):
    doc = {**seed_payloads()[name], field: value}
    verdict = validate(SCHEMA[name], _dumps(doc))
    assert verdict.code == "wrong_type", verdict.reason
    assert field in verdict.reason


def test_non_finite_numbers_are_wrong_type():
    text = json.dumps({**seed_payloads()["gps"], "speed": float("nan")})  # Python writes NaN
    assert "NaN" in text and _code("gps", text) == "wrong_type"


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2024-13-01T00:00:00",
        "2024-06-03T25:00:00",
        "03/06/2024 08:00",
        "",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_timestamp(text):
    doc = {**seed_payloads()["emergency"], "timestamp": text}
    assert _code("emergency", _dumps(doc)) == "bad_timestamp"


def _bounded_fields() -> list[tuple[str, str, float, float]]:
    """(record, field, a valid boundary value, an invalid value just outside) from the schemas."""
    cases = []
    for r in RECORDS:
        for f in r.fields:
            for bound, step in ((f.minimum, -1), (f.maximum, +1)):
                if bound is not None:
                    cases.append((r.name, f.name, bound, bound + step))
    return cases


@pytest.mark.parametrize(("name", "field", "edge", "outside"), _bounded_fields())
def test_out_of_range_follows_the_declared_bounds(name, field, edge, outside):
    doc = seed_payloads()[name]
    if name == "vehicle" and field == "year":
        edge, outside = int(edge), int(outside)
    assert validate(SCHEMA[name], _dumps({**doc, field: edge})).valid
    verdict = validate(SCHEMA[name], _dumps({**doc, field: outside}))
    assert verdict.code == "out_of_range" and field in verdict.reason


@pytest.mark.parametrize("part", LOCATION_FIELDS, ids=lambda f: f.name)
@pytest.mark.parametrize("shape", ["array", "object"])
def test_out_of_range_location(part, shape):
    for value, ok in (
        (part.minimum, True),
        (part.maximum, True),
        (part.minimum - 0.5, False),
        (part.maximum + 0.5, False),
    ):
        lat, lon = (value, 0.0) if part.name == "latitude" else (0.0, value)
        loc = [lat, lon] if shape == "array" else {"latitude": lat, "longitude": lon}
        verdict = validate(TRAFFIC, _dumps({**seed_payloads()["traffic"], "location": loc}))
        assert verdict.valid is ok, verdict.reason
        if not ok:
            assert verdict.code == "out_of_range" and f"location.{part.name}" in verdict.reason


def test_issue_ranges_are_declared():
    """The ranges the issue names: lat/lon, speed 0..300, humidity 0..100, AQI >= 0, year plausible."""
    assert (VEHICLE.field("speed").minimum, VEHICLE.field("speed").maximum) == (0, 300)
    assert (GPS.field("speed").minimum, GPS.field("speed").maximum) == (0, 300)
    assert (WEATHER.field("humidity").minimum, WEATHER.field("humidity").maximum) == (0, 100)
    assert WEATHER.field("airQualityIndex").minimum == 0
    assert VEHICLE.field("year").minimum >= 1886 and VEHICLE.field("year").maximum <= 2100
    assert [(f.minimum, f.maximum) for f in LOCATION_FIELDS] == [(-90, 90), (-180, 180)]


def test_oversized():
    payload = _dumps(seed_payloads()["traffic"])
    assert validate(TRAFFIC, payload, max_bytes=len(payload)).valid
    verdict = validate(TRAFFIC, payload, max_bytes=len(payload) - 1)
    assert verdict.code == "oversized" and str(len(payload)) in verdict.reason
    assert validate(TRAFFIC, payload.decode(), max_bytes=len(payload) - 1).code == "oversized"
    assert validate(TRAFFIC, payload).valid  # no cap by default


def test_validate_never_raises_on_mangled_payloads():
    """Byte-level damage to seed payloads always yields a verdict with a documented code."""
    rng = random.Random(1234)
    originals = [(SCHEMA[n], bytearray(_dumps(d))) for n, d in seed_payloads().items()]
    seen = set()
    for _ in range(3000):
        record, data = rng.choice(originals)
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op, i = rng.randrange(3), rng.randrange(len(data))
            if op == 0:
                data[i] = rng.randrange(256)
            elif op == 1:
                del data[i]
            else:
                data.insert(i, rng.choice(b'{}[]",:0-e.9\\ntu\xff'))
        verdict = validate(record, bytes(data))
        assert verdict.valid or verdict.code in REASON_CODES
        seen.add(verdict.code)
    assert {"not_json", None} <= seen


def test_tombstone_is_not_json() -> None:
    assert validate(GPS, None, max_bytes=10).reason == "not_json: value is null (tombstone)"


@pytest.mark.parametrize("escaped", ["\\ud800", "a\\udfffb", "\\ude00\\ud83d"])
def test_a_lone_surrogate_is_not_a_string(escaped: str) -> None:
    """json.loads accepts `"\\ud800"` but the str has no UTF-8 form: valid, it crashed the
    Arrow hand-over of the row to Spark (a poison pill). Pairs stay valid text."""
    base = seed_payloads()["gps"]
    payload = json.dumps(base)[:-1] + f', "direction": "{escaped}"}}'
    payload = payload.replace(f'"direction": "{base["direction"]}", ', "")
    verdict = validate(GPS, payload.encode())
    assert verdict.reason == "wrong_type: direction must be Unicode text (it holds a lone surrogate)"
    paired = validate(GPS, payload.replace(escaped, "\\ud83d\\ude00").encode())
    assert paired.valid and paired.row["direction"] == "\U0001f600"


# --- the event-time rule: from the start date to MOVESMART_MAX_FUTURE_SKEW past ingestion ----
RULE = contract.EventTimeRule(datetime(2024, 1, 1, tzinfo=UTC), timedelta(days=1))
INGESTED = datetime(2024, 6, 3, 9, 0, 0, 123000, tzinfo=UTC)  # a Kafka timestamp: milliseconds
US = timedelta(microseconds=1)


def _at(name: str, ts: datetime | str) -> contract.Verdict:
    text = ts if isinstance(ts, str) else ts.isoformat()
    return validate(SCHEMA[name], _dumps({**seed_payloads()[name], "timestamp": text}), None, RULE, INGESTED)


@pytest.mark.parametrize("name", ALL)
def test_event_times_between_the_start_date_and_the_skew_ahead_of_ingestion_are_valid(name):
    for ts in (RULE.start, INGESTED, INGESTED + RULE.max_future_skew, INGESTED - timedelta(days=150)):
        verdict = _at(name, ts)
        assert verdict.valid, verdict.reason
        assert verdict.row["timestamp"] == ts


@pytest.mark.parametrize("name", ALL)
def test_an_event_time_before_the_start_date_is_out_of_range(name):
    verdict = _at(name, RULE.start - US)
    assert verdict.reason == (
        "out_of_range: timestamp=2023-12-31T23:59:59.999999+00:00 is before the start date 2024-01-01"
    )
    # an offset moves the instant, and the instant is what counts: 00:30+01:00 is 23:30 UTC the day before
    assert _at(name, "2024-01-01T00:30:00+01:00").reason == (
        "out_of_range: timestamp=2023-12-31T23:30:00+00:00 is before the start date 2024-01-01"
    )
    assert _at(name, "2023-12-31T23:30:00-01:00").valid


@pytest.mark.parametrize("name", ALL)
def test_an_event_time_more_than_the_skew_ahead_of_ingestion_is_out_of_range(name):
    verdict = _at(name, INGESTED + RULE.max_future_skew + US)
    assert verdict.reason == (
        "out_of_range: timestamp=2024-06-04T09:00:00.123001+00:00 is more than P1D ahead of "
        "its ingestion at 2024-06-03T09:00:00.123000+00:00"
    )
    assert _at(name, "2099-01-01T00:00:00Z").code == "out_of_range"


def test_the_skew_is_named_as_its_setting_is_written():
    rule = contract.EventTimeRule(RULE.start, timedelta(hours=6, minutes=30))
    doc = {**seed_payloads()["gps"], "timestamp": "2024-06-03T15:30:00.124"}
    verdict = validate(GPS, _dumps(doc), None, rule, INGESTED)
    assert verdict.reason.endswith(
        "is more than PT6H30M ahead of its ingestion at 2024-06-03T09:00:00.123000+00:00"
    )
    assert validate(GPS, _dumps({**doc, "timestamp": "2024-06-03T15:30:00.123"}), None, rule, INGESTED).valid


def test_a_zero_skew_accepts_event_times_up_to_the_ingestion_itself():
    rule = contract.EventTimeRule(RULE.start, timedelta(0))
    doc = seed_payloads()["gps"]
    assert validate(GPS, _dumps({**doc, "timestamp": INGESTED.isoformat()}), None, rule, INGESTED).valid
    later = (INGESTED + US).isoformat()
    assert validate(GPS, _dumps({**doc, "timestamp": later}), None, rule, INGESTED).code == "out_of_range"


def test_the_time_rule_comes_after_the_shape_rules():
    """A record broken in shape keeps that reason; only a well-formed record is judged in time."""
    doc = {**seed_payloads()["vehicle"], "timestamp": "1999-01-01T00:00:00", "speed": "fast"}
    assert validate(VEHICLE, _dumps(doc), None, RULE, INGESTED).reason == "wrong_type: speed must be a number"
    doc = {**seed_payloads()["vehicle"], "timestamp": "not a time"}
    assert validate(VEHICLE, _dumps(doc), None, RULE, INGESTED).code == "bad_timestamp"


def test_an_upper_bound_beyond_any_datetime_is_no_bound():
    rule = contract.EventTimeRule(RULE.start, timedelta(days=3_000_000))  # 2024 + ~8,200 years
    doc = {**seed_payloads()["gps"], "timestamp": "9999-12-31T23:59:59"}
    assert validate(GPS, _dumps(doc), None, rule, INGESTED).valid


def test_a_time_rule_needs_the_ingestion_time():
    with pytest.raises(TypeError, match="ingested_at"):
        validate(GPS, _dumps(seed_payloads()["gps"]), None, RULE)


def test_the_rule_from_settings():
    from movesmart_dagster.settings import load_settings

    rule = contract.EventTimeRule.from_settings(
        load_settings({"MOVESMART_START_DATE": "2025-03-04", "MOVESMART_MAX_FUTURE_SKEW": "PT2H"})
    )
    assert rule == contract.EventTimeRule(datetime(2025, 3, 4, tzinfo=UTC), timedelta(hours=2))
    assert contract.EventTimeRule.from_settings(load_settings({})) == RULE  # the defaults
