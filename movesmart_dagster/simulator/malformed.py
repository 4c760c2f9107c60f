"""Malformed records for `--bad-ratio`: which positions are bad, and how a good record is broken.

Why its own module: the defects follow the contract's reason codes (`movesmart_dagster.contract`)
and change with them, not with the fleet's model; their placement is exact (floor(ratio * 100)
per block of 100) so tests can count the quarantine to the record.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque

from movesmart_dagster.schemas import EMERGENCY, GPS, TRAFFIC, VEHICLE, WEATHER

BAD_BLOCK = 100  # malformed records are placed per block of 100: floor(ratio * N) in the first N = k*100

# The defects `--bad-ratio` injects; each is a reason code of `movesmart_dagster.contract`.
DEFECTS = ("not_json", "not_object", "missing_required", "wrong_type", "out_of_range", "bad_timestamp")

# (field, bad value) per topic; "location.latitude" means inside the location.
_WRONG_TYPE: dict[str, tuple[tuple[str, object], ...]] = {
    VEHICLE.topic: (("speed", "fast"), ("year", "2024"), ("location", "London"), ("id", 42)),
    GPS.topic: (("speed", "fast"), ("direction", 45), ("deviceId", 7)),
    TRAFFIC.topic: (("location", "M6 J4"), ("cameraId", 123), ("snapshot", False)),
    WEATHER.topic: (("temperature", "warm"), ("humidity", "high"), ("location", [51.5])),
    EMERGENCY.topic: (("status", True), ("location", "here"), ("incidentId", 99)),
}
_OUT_OF_RANGE: dict[str, tuple[tuple[str, float], ...]] = {
    VEHICLE.topic: (("speed", 412.5), ("speed", -3.0), ("year", 1850), ("location.latitude", 95.25)),
    GPS.topic: (("speed", 301.0), ("speed", -12.0)),
    TRAFFIC.topic: (("location.latitude", -91.0), ("location.longitude", 200.0)),
    WEATHER.topic: (
        ("humidity", 130.0),
        ("temperature", 75.0),
        ("airQualityIndex", -5.0),
        ("windSpeed", -2.0),
    ),
    EMERGENCY.topic: (("location.longitude", -190.0), ("location.latitude", 90.5)),
}
_BAD_TIMESTAMPS = ("not-a-time", "2024-13-45T25:61:00", "yesterday 5pm", "03/06/2024 08:00")


def corrupt(topic: str, value: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Make a good record bad in one of the `DEFECTS` ways; returns (bytes, defect)."""
    defect = DEFECTS[int(rng.random() * len(DEFECTS))]
    if defect == "not_json":
        variant = rng.randrange(3)
        if variant == 0:  # cut off mid-way
            return value[: rng.randint(1, len(value) - 2)], defect
        if variant == 1:  # not UTF-8 at all
            return value.decode().encode("utf-16"), defect
        return b"vehicle says hello: " + value[:20], defect
    if defect == "not_object":
        return (b'["not", "an", "object"]' if rng.random() < 0.5 else b"42"), defect
    doc = json.loads(value)
    if defect == "missing_required":
        name = rng.choice(("id", "deviceId", "timestamp"))
        if rng.random() < 0.5:
            del doc[name]
        else:
            doc[name] = None
    elif defect == "wrong_type":
        name, bad = rng.choice(_WRONG_TYPE[topic])
        doc[name] = bad
    elif defect == "out_of_range":
        name, bad = rng.choice(_OUT_OF_RANGE[topic])
        if name.startswith("location."):
            part = name.split(".", 1)[1]
            loc = doc["location"]
            if isinstance(loc, list):
                loc[0 if part == "latitude" else 1] = bad
            else:
                loc[part] = bad
        else:
            doc[name] = bad
    else:  # bad_timestamp
        doc["timestamp"] = rng.choice(_BAD_TIMESTAMPS)
    return json.dumps(doc, separators=(",", ":")).encode(), defect


class BadPlan:
    """Which record positions are malformed: exactly floor(ratio*100) per block of 100."""

    def __init__(self, seed: int, ratio: float) -> None:
        self.rng = random.Random(f"{seed}:bad")
        self.ratio = ratio
        self.next_block = 0
        self.pending: deque[int] = deque()

    def _quota(self, block: int) -> int:
        return math.floor(self.ratio * BAD_BLOCK * (block + 1) + 1e-9) - math.floor(
            self.ratio * BAD_BLOCK * block + 1e-9
        )

    def below(self, end: int) -> list[int]:
        """Pop the malformed positions < end (positions are global record indexes)."""
        while self.next_block * BAD_BLOCK < end:
            b = self.next_block
            picks = sorted(self.rng.sample(range(BAD_BLOCK), self._quota(b)))
            self.pending.extend(b * BAD_BLOCK + p for p in picks)
            self.next_block += 1
        found = []
        while self.pending and self.pending[0] < end:
            found.append(self.pending.popleft())
        return found


def expected_bad_count(ratio: float, events: int) -> int:
    """How many of the first `events` records are malformed, when `events` is a multiple of 100."""
    if events % BAD_BLOCK:
        raise ValueError(f"exact only for multiples of {BAD_BLOCK}")
    return math.floor(ratio * events + 1e-9)
