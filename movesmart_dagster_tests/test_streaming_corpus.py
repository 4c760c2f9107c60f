"""A corpus of Kafka values, good and bad, per topic: fed through the Spark rules and the Python reference."""

from __future__ import annotations

import json
from typing import Any

from movesmart_dagster.schemas import RECORDS, FieldType, RecordSchema

_GOOD: dict[str, dict[str, Any]] = {
    "vehicle": {
        "id": "6c1f6a1e-1f6b-4f39-9d51-6f0f3e0d3b11",
        "deviceId": "Vehicle-7",
        "timestamp": "2024-08-12T10:00:30.123456",
        "location": {"latitude": 51.5074, "longitude": -0.1278},
        "speed": 42.5,
        "direction": "North-East",
        "make": "BMW",
        "model": "C500",
        "year": 2024,
        "fuelType": "Hybrid",
    },
    "gps": {
        "id": "a1",
        "deviceId": "Vehicle-7",
        "timestamp": "2024-08-12T10:00:30Z",
        "speed": 10,
        "direction": "North-East",
        "vehicleType": "private",
    },
    "traffic": {
        "id": "t1",
        "deviceId": "Vehicle-7",
        "cameraId": "Nikon-Cam123",
        "location": [51.5, -0.12],
        "timestamp": "2024-08-12 10:00:30",
        "snapshot": "Base64EncodedString",
    },
    "weather": {
        "id": "w1",
        "deviceId": "Vehicle-7",
        "location": {"latitude": 52.0, "longitude": -1.0},
        "timestamp": "2024-08-12T10:00:30+02:00",
        "temperature": -5.5,
        "weatherCondition": "Sunny",
        "precipitation": 0,
        "windSpeed": 12.0,
        "humidity": 55,
        "airQualityIndex": 20.5,
    },
    "emergency": {
        "id": "e1",
        "deviceId": "Vehicle-7",
        "incidentId": "i1",
        "type": "Fire",
        "timestamp": "2024-08-12T10:00:30.5-05:30",
        "location": {"latitude": 1, "longitude": 2},
        "status": "Active",
        "description": "Description of the incident",
    },
}

_TIMESTAMPS = [
    "2024-01-01",
    "2024-01-01T10",
    "2024-01-01T10:00",
    "2024-01-01T10:00:00.1",
    "2024-01-01T10:00:00.1234567",
    "2024-01-01x10:00:00",
    "2024-01-01T10:00:00+01",
    "2024-01-01T10:00:00+0100",
    "2024-01-01T10:00:00+01:00:30",
    "2024-01-01T10:00:00+23:59",
    "2024-01-01T10:00:00+24:00",
    "20240101",
    "20240101T100000",
    "2024-01",
    "2024",
    "2024-1-1",
    "2024-01-01T10:00:00.",
    "2024-02-30T00:00:00",
    "2024-02-29T00:00:00",
    "0000-01-01T00:00:00",
    "2024-01-01T24:00:00",
    "2024-01-01T10:00:60",
    "2024-01-01T10:00:00 ",
    " 2024-01-01",
    "2024-01-01T10:00:00,5",
    "2024-01-01T10:00:00-00:00",
    "2024-01-01T10:00:00UTC",
    "yesterday",
    "",
    "12",
]


def _variants(record: RecordSchema) -> list[bytes]:
    good = _GOOD[record.name]
    out: list[bytes] = [json.dumps(good).encode()]
    dumps = lambda d: json.dumps(d).encode()  # noqa: E731
    for f in record.fields:
        without = {k: v for k, v in good.items() if k != f.name}
        out.append(dumps(without))
        out.append(dumps({**good, f.name: None}))
        wrong: list[Any]
        match f.type:
            case FieldType.STRING:
                wrong = [12, 1.5, True, {"a": 1}, ["x"], "12", "true", "{x", "", "-3e5"]
            case FieldType.DOUBLE:
                wrong = ["12", True, False, {"a": 1}, [1], 1e6, -1, 301, 0, 300, 1.5e-7, 2, "NaN"]
            case FieldType.INT:
                wrong = [2020.0, 2020.5, "2020", True, 1850, 2200, 3_000_000_000, 1e30]
            case FieldType.TIMESTAMP:
                wrong = [1704067200, True, {"a": 1}, *_TIMESTAMPS]
            case FieldType.LOCATION:
                wrong = [
                    [51.5, -0.1],
                    [51.5],
                    [51.5, -0.1, 3],
                    ["51.5", "-0.1"],
                    [True, 1],
                    [95, 0],
                    [0, 181],
                    {"latitude": 51.5},
                    {"latitude": "51", "longitude": 1},
                    {"latitude": -91, "longitude": 0},
                    {"latitude": 1, "longitude": 2, "alt": 3},
                    "51.5,-0.1",
                    51.5,
                    True,
                    [],
                ]
        out.extend(dumps({**good, f.name: w}) for w in wrong)
    text = json.dumps(good)
    out += [
        b"",
        b"   ",
        b"not json",
        b"{bad",
        b"[1, 2]",
        b"123",
        b"1.5",
        b'"text"',
        b"null",
        b"true",
        b"{}",
        b'{"foo": 1}',
        b"\xff\xfe\x00garbage",
        b"\xef\xbb\xbf" + text.encode(),
        (text + "  \n").encode(),
        ("\n " + text).encode(),
        (text + " trailing").encode(),
        text.replace('"', "'").encode(),
        text.replace(": ", ":").replace(", ", ",").encode(),
        text[:-1].encode() + b', "extra": [1, {"b": null}]}',
        text[:-1].encode() + b', "id": "dup-last-wins"}',
        text[:-1].encode() + b', "speed": NaN}',
        text[:-1].encode() + b', "other": Infinity}',
        json.dumps({k.upper(): v for k, v in good.items()}).encode(),
        json.dumps(good, ensure_ascii=False).replace("Vehicle-7", "Véhicule-7 ✓").encode(),
    ]
    return out


def good_record(name: str) -> dict[str, Any]:
    """A valid record of the type `name` (vehicle, gps, ...), its event time 2024-08-12 ~10:00 UTC."""
    return dict(_GOOD[name])


def corpus() -> list[tuple[str, bytes]]:
    """(topic, value) pairs covering every rule of every record type."""
    return [(r.topic, v) for r in RECORDS for v in _variants(r)]
