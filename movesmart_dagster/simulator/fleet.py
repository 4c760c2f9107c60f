"""The simulated fleet: a deterministic model that turns a seed into Kafka records.

Why deterministic: tests, demos and backfills must be repeatable. Every random draw
comes from an RNG seeded from `(seed, what it is for)`: one per vehicle (its motion,
readings and record ids), one per route (the weather and traffic along it), one for
the choice of malformed records. So the same configuration yields byte-identical
records, ids included, and a vehicle's stream does not change when the fleet grows.
With `realtime=True` only the timestamps change (they are the wall clock).

Why it is fast: the value bytes are built with f-strings from pre-rendered fragments
(`json.dumps` of a dict is ~3x that; a single %-format of all four records measured slower),
each number formatted once per tick, the ids of a tick from one random draw, timestamps by
concatenation, and the fleet hands out one list of `(topic, value, key)` per tick for the
whole fleet, so the producer loop is a bare `produce(*record)`.

The model, per tick (default every 5 simulated seconds) and vehicle:
- weather is a smooth field over (position along the route, time) shared by every
  vehicle on that route: temperature, cloud, rain or snow, wind, humidity, air quality
  (worse near the cities);
- traffic congestion is a field too: dense near both cities, at road works, at rush hour;
- speed relaxes towards a target = cruising speed x traffic x weather x incident factors,
  with a floor of 5 km/h, so every vehicle arrives;
- position advances by speed x tick along the route (a gentle curve between the two
  cities); the vehicle has arrived when the distance driven reaches the route length,
  emits a last reading parked at the destination (speed 0) and stops;
- emergencies are rare (about one per vehicle-hour): an `Active` record when one
  starts, a `Resolved` record with the same incidentId when it ends (or on arrival).
One record per stream per tick for vehicle, gps, traffic and weather; emergency records
only for incident transitions.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from movesmart_dagster.schemas import EMERGENCY, GPS, TRAFFIC, VEHICLE, WEATHER
from movesmart_dagster.simulator.routes import DEFAULT_ROUTE, Route, compass, parse_routes

VEHICLE_TOPIC, GPS_TOPIC, TRAFFIC_TOPIC, WEATHER_TOPIC, EMERGENCY_TOPIC = (
    VEHICLE.topic,
    GPS.topic,
    TRAFFIC.topic,
    WEATHER.topic,
    EMERGENCY.topic,
)

# A Monday morning commute; fixed so that the default run is byte-identical every time.
DEFAULT_START = datetime(2024, 6, 3, 8, 0, 0, tzinfo=UTC)
WireFormat = Literal["canonical", "seed"]
MIN_SPEED_KMH = 5.0  # the floor that guarantees arrival
BAD_BLOCK = 100  # malformed records are placed per block of 100: floor(ratio * N) in the first N = k*100

# The defects `--bad-ratio` injects; each is a reason code of `movesmart_dagster.contract`.
DEFECTS = ("not_json", "not_object", "missing_required", "wrong_type", "out_of_range", "bad_timestamp")


class SimRecord(NamedTuple):
    """One Kafka record; `defect` is the contract reason code it was malformed for, or None."""

    topic: str
    key: bytes
    value: bytes
    defect: str | None


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. Same config => same records (timestamps too unless `realtime`)."""

    vehicles: int = 5
    seed: int = 42
    routes: tuple[str, ...] = (DEFAULT_ROUTE,)
    start_time: datetime = DEFAULT_START
    realtime: bool = False
    tick_seconds: float = 5.0
    bad_ratio: float = 0.0
    max_events: int | None = None
    wire_format: WireFormat = "canonical"

    def __post_init__(self) -> None:
        if self.vehicles < 1:
            raise ValueError("vehicles must be at least 1")
        if not 0.0 <= self.bad_ratio <= 1.0:
            raise ValueError("bad_ratio must be within 0..1")
        if not 0.1 <= self.tick_seconds <= 3600:
            raise ValueError("tick_seconds must be within 0.1..3600")
        if self.max_events is not None and self.max_events < 0:
            raise ValueError("max_events must be >= 0")
        if self.wire_format not in ("canonical", "seed"):
            raise ValueError("wire_format must be 'canonical' or 'seed'")
        if self.start_time.tzinfo is None:  # naive means UTC, as on the wire
            object.__setattr__(self, "start_time", self.start_time.replace(tzinfo=UTC))
        parse_routes(self.routes)  # fail early on an unknown route


# --- small helpers ------------------------------------------------------------------------
_TWO_PI = 2 * math.pi
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)
# the version/variant bits of the three ids in one `Vehicle.step` draw (at bits 0, 128, 288)
_IDS_CLEAR = ~sum(((0xF000 << 64) | (0xC000 << 48)) << o for o in (0, 128, 288))
_IDS_SET = sum(_V4_SET << o for o in (0, 128, 288))


def uuid4_from(bits: int) -> str:
    """`str(uuid.UUID(int=bits, version=4))`, about 3x faster (it is on the hot path)."""
    h = f"{(bits & _V4_CLEAR) | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# (make, model, year, fuelType, vehicleType, cruising km/h); the first is the seed's car.
_MODELS: tuple[tuple[str, str, int, str, str, float], ...] = (
    ("BMW", "C500", 2024, "Hybrid", "private", 110.0),
    ("Toyota", "Prius", 2022, "Hybrid", "taxi", 104.0),
    ("Tesla", "Model 3", 2023, "Electric", "private", 112.0),
    ("Ford", "Transit", 2021, "Diesel", "van", 100.0),
    ("Volvo", "FH16", 2020, "Diesel", "truck", 86.0),
    ("Alexander Dennis", "Enviro400", 2019, "Diesel", "bus", 88.0),
    ("Nissan", "Leaf", 2023, "Electric", "private", 102.0),
    ("Volkswagen", "Golf", 2018, "Petrol", "private", 108.0),
)

# incident type -> (speed factor while active, description template)
_INCIDENTS: dict[str, tuple[float, str]] = {
    "Accident": (0.35, "Collision blocking a lane near km {km:.1f} of {route}"),
    "Fire": (0.5, "Vehicle fire on the hard shoulder near km {km:.1f} of {route}"),
    "Medical": (0.8, "Medical emergency reported near km {km:.1f} of {route}"),
    "Police": (0.7, "Police incident, traffic held near km {km:.1f} of {route}"),
}
_INCIDENT_TYPES = tuple(_INCIDENTS)
INCIDENT_PROB = 1 / 720  # per vehicle-tick: about one per vehicle-hour at 5 s ticks


class RouteField:
    """Weather, traffic and road shape along one route: smooth functions, seeded per route."""

    def __init__(self, route: Route, seed: int) -> None:
        rng = random.Random(f"{seed}:route:{route.name}")
        self.route = route
        self.length_km = route.distance_km
        u = rng.uniform
        self.temp0, self.temp_k, self.temp_ph, self.temp_day = u(-2, 20), u(0.5, 2), u(0, 1), u(0, 1)
        self.cloud_k, self.cloud_ph, self.cloud_k2, self.cloud_ph2 = u(1, 3), u(0, 1), u(4, 8), u(0, 1)
        self.wind0, self.wind_k, self.wind_ph = u(8, 30), u(0.5, 2), u(0, 1)
        self.aqi0 = u(15, 40)
        self.fog_k, self.fog_ph = u(1, 4), u(0, 1)
        self.works_k, self.works_ph = u(2, 5), u(0, 1)
        # road shape: a sideways offset that is zero at both ends
        self.bend_km = min(4.0, 0.04 * self.length_km) * u(0.4, 1.0)
        self.bend_k, self.bend_ph = rng.randint(1, 3), u(0, 1)
        s, e = route.start, route.end
        self.lat0, self.lon0 = s.latitude, s.longitude
        self.dlat, self.dlon = e.latitude - s.latitude, e.longitude - s.longitude
        # unit sideways vector in degrees per km (perpendicular to the route)
        mid_lat = math.radians((s.latitude + e.latitude) / 2)
        north_km, east_km = self.dlat * 111.2, self.dlon * 111.2 * math.cos(mid_lat)
        norm = math.hypot(north_km, east_km) or 1.0
        self.side_lat = (east_km / norm) / 111.2
        self.side_lon = (-north_km / norm) / (111.2 * math.cos(mid_lat))

    def position(self, f: float) -> tuple[float, float]:
        """Latitude, longitude at fraction `f` (0..1) of the route."""
        side = self.bend_km * math.sin(math.pi * f) * math.sin(_TWO_PI * (self.bend_k * f + self.bend_ph))
        return (
            self.lat0 + f * self.dlat + side * self.side_lat,
            self.lon0 + f * self.dlon + side * self.side_lon,
        )

    def weather(self, f: float, hours: float) -> tuple[float, float, float, float, float, str]:
        """(temperature C, precipitation mm, wind km/h, humidity %, AQI, condition) at f, time."""
        sin = math.sin
        temp = (
            self.temp0
            + 3.0 * sin(_TWO_PI * (self.temp_k * f + self.temp_ph))
            + 2.5 * sin(_TWO_PI * (hours / 24 + self.temp_day))
        )
        cloud = (
            0.5
            + 0.35 * sin(_TWO_PI * (self.cloud_k * f + hours / 3 + self.cloud_ph))
            + 0.15 * sin(_TWO_PI * (self.cloud_k2 * f + self.cloud_ph2))
        )
        precip = (cloud - 0.72) * 30.0 if cloud > 0.72 else 0.0
        wind = self.wind0 + 12.0 * sin(_TWO_PI * (self.wind_k * f + hours / 4 + self.wind_ph))
        wind = wind if wind > 0.0 else 0.0
        fog = sin(_TWO_PI * (self.fog_k * f + hours / 5 + self.fog_ph))  # occasional fog pockets
        fog = fog**6 if fog > 0.0 else 0.0
        humidity = 40.0 + 45.0 * cloud + 20.0 * fog
        humidity = 100.0 if humidity > 100.0 else humidity
        km_start, km_end = f * self.length_km, (1.0 - f) * self.length_km
        aqi = self.aqi0 + 70.0 * (math.exp(-km_start / 12.0) + math.exp(-km_end / 12.0)) + wind * -0.3
        aqi = aqi if aqi > 1.0 else 1.0
        if precip > 0.3:
            cond = "Snow" if temp <= 1.0 else "Rain"
        elif fog > 0.5 and wind < 20.0:
            cond = "Fog"
        elif cloud > 0.5:
            cond = "Cloudy"
        else:
            cond = "Sunny"
        return temp, precip, wind, humidity, aqi, cond

    def congestion(self, f: float, hour_of_day: float) -> float:
        """0 (free flow) .. 0.9 (jam): near the cities, at road works, at rush hour."""
        km_start, km_end = f * self.length_km, (1.0 - f) * self.length_km
        c = 0.55 * (math.exp(-km_start / 6.0) + math.exp(-km_end / 6.0))
        works = math.sin(_TWO_PI * (self.works_k * f + self.works_ph))
        if works > 0.0:
            c += 0.5 * works**8
        if 7.0 <= hour_of_day < 9.5 or 16.0 <= hour_of_day < 18.5:
            c += 0.15
        return c if c < 0.9 else 0.9


_WEATHER_FACTOR = {"Sunny": 1.0, "Cloudy": 1.0, "Rain": 0.85, "Snow": 0.55, "Fog": 0.7}


@dataclass
class _Incident:
    incident_id: str
    type: str
    location: str
    description: str
    ticks_left: int


@dataclass
class Vehicle:
    """One vehicle's state; `step` appends its records for one tick to `out`."""

    index: int
    route: Route
    road: RouteField
    seed: int
    wire_format: WireFormat
    device_id: str = field(init=False)
    key: bytes = field(init=False)
    done: bool = field(default=False, init=False)
    incident: _Incident | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:vehicle:{self.index}")
        self.rng = rng
        self.bits = rng.getrandbits
        self.device_id = f"vehicle-{self.index + 1:05d}"
        self.key = self.device_id.encode()
        make, model, year, fuel, vtype, cruise = _MODELS[0] if self.index == 0 else rng.choice(_MODELS)
        self.vehicle_type = vtype
        self.cruise = cruise * rng.uniform(0.92, 1.06)
        self.speed = 15.0  # pulling away
        self.km = 0.0
        self.lat, self.lon = self.road.lat0, self.road.lon0
        self.stagger = timedelta(milliseconds=rng.randrange(0, 1000))
        # pre-rendered JSON fragments (all ASCII, nothing to escape)
        self.j_dev = f'"deviceId":"{self.device_id}"'
        self.j_vehicle_tail = f'"make":"{make}","model":"{model}","year":{year},"fuelType":"{fuel}"'
        self.j_vtype = f'"vehicleType":"{vtype}"'
        self.camera_prefix = f"CAM-{self.route.code}-"
        # small placeholder snapshots, as the seed's "Base64EncodedString"
        self.snapshots = [base64.b64encode(rng.randbytes(18)).decode() for _ in range(8)]

    def _loc(self, lat: float, lon: float) -> str:
        if self.wire_format == "seed":
            return f"[{lat:.6f},{lon:.6f}]"
        return f'{{"latitude":{lat:.6f},"longitude":{lon:.6f}}}'

    def step(self, ts: str, hours: float, hour_of_day: float, dt: float, out: list) -> None:
        """Drive one tick of `dt` seconds and append its (topic, value, key) records to `out`."""
        rng_random = self.rng.random
        road = self.road
        f = self.km / road.length_km
        temp, precip, wind, humidity, aqi, cond = road.weather(f, hours)
        # speed reacts to traffic, weather and any incident of ours
        target = self.cruise * (1.0 - 0.8 * road.congestion(f, hour_of_day)) * _WEATHER_FACTOR[cond]
        if wind > 50.0:
            target *= 0.9
        inc = self.incident
        if inc is not None:
            target *= _INCIDENTS[inc.type][0]
        speed = self.speed + 0.3 * (target - self.speed) + (rng_random() - 0.5) * 4.0
        speed = MIN_SPEED_KMH if speed < MIN_SPEED_KMH else (200.0 if speed > 200.0 else speed)
        self.speed = speed
        km = self.km + speed * dt / 3600.0
        prev_lat, prev_lon = self.lat, self.lon
        if km >= road.length_km:  # arrived: park at the destination
            km, self.done, speed = road.length_km, True, 0.0
            lat, lon = self.route.end.latitude, self.route.end.longitude
        else:
            lat, lon = road.position(km / road.length_km)
        self.km, self.lat, self.lon = km, lat, lon
        direction = compass(lat - prev_lat, lon - prev_lon, lat)
        loc = self._loc(lat, lon)
        key, dev = self.key, self.j_dev
        spd = f"{speed:.2f}"
        # One draw for three record ids and the snapshot choice: getrandbits(416) is the same 13
        # Mersenne words, least significant first, as getrandbits(128), getrandbits(128),
        # getrandbits(3), getrandbits(128) one by one (vehicle id, gps id, snapshot = top 3 bits
        # of the word at bit 256, traffic id at 288): the same bytes as drawing them singly.
        x = self.bits(416)
        snapshot = self.snapshots[(x >> 285) & 7]
        h = f"{(x & _IDS_CLEAR) | _IDS_SET:0104x}"  # hex, most significant first: ids at 72, 40, 0
        camera = f"{self.camera_prefix}{int(km // 2.0):03d}"
        # sensor noise on top of the smooth field
        temp += (rng_random() - 0.5) * 0.3
        hum = (
            f"{round(humidity)}" if self.wire_format == "seed" else f"{humidity:.1f}"
        )  # the seed sent an int
        out += (
            (
                VEHICLE_TOPIC,
                f'{{"id":"{h[72:80]}-{h[80:84]}-{h[84:88]}-{h[88:92]}-{h[92:104]}",{dev},'
                f'"timestamp":"{ts}","location":{loc},"speed":{spd},"direction":"{direction}",'
                f"{self.j_vehicle_tail}}}".encode(),
                key,
            ),
            (
                GPS_TOPIC,
                f'{{"id":"{h[40:48]}-{h[48:52]}-{h[52:56]}-{h[56:60]}-{h[60:72]}",{dev},'
                f'"timestamp":"{ts}","speed":{spd},"direction":"{direction}",{self.j_vtype}}}'.encode(),
                key,
            ),
            (
                TRAFFIC_TOPIC,
                f'{{"id":"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}",{dev},'
                f'"cameraId":"{camera}","location":{loc},"timestamp":"{ts}","snapshot":"{snapshot}"}}'.encode(),
                key,
            ),
            (
                WEATHER_TOPIC,
                f'{{"id":"{uuid4_from(self.bits(128))}",{dev},"location":{loc},'
                f'"timestamp":"{ts}","temperature":{temp:.1f},"weatherCondition":"{cond}",'
                f'"precipitation":{precip:.2f},"windSpeed":{wind:.1f},"humidity":{hum},'
                f'"airQualityIndex":{aqi:.1f}}}'.encode(),
                key,
            ),
        )
        # emergencies: rare, Active -> Resolved with the same incidentId
        if inc is not None:
            inc.ticks_left -= 1
            if inc.ticks_left <= 0 or self.done:
                out.append(self._emergency(inc, ts, "Resolved"))
                self.incident = None
        elif not self.done and rng_random() < INCIDENT_PROB:
            kind = _INCIDENT_TYPES[int(rng_random() * len(_INCIDENT_TYPES))]
            inc = _Incident(
                incident_id=uuid4_from(self.bits(128)),
                type=kind,
                location=loc,
                description=_INCIDENTS[kind][1].format(km=km, route=self.route.name),
                ticks_left=self.rng.randint(6, 72),
            )
            self.incident = inc
            out.append(self._emergency(inc, ts, "Active"))

    def _emergency(self, inc: _Incident, ts: str, status: str) -> tuple[str, bytes, bytes]:
        return (
            EMERGENCY_TOPIC,
            f'{{"id":"{uuid4_from(self.bits(128))}",{self.j_dev},"incidentId":"{inc.incident_id}",'
            f'"type":"{inc.type}","timestamp":"{ts}","location":{inc.location},"status":"{status}",'
            f'"description":"{inc.description}"}}'.encode(),
            self.key,
        )


# --- malformed records ----------------------------------------------------------------------
# (field, bad value) per topic; "location.latitude" means inside the location.
_WRONG_TYPE: dict[str, tuple[tuple[str, object], ...]] = {
    VEHICLE_TOPIC: (("speed", "fast"), ("year", "2024"), ("location", "London"), ("id", 42)),
    GPS_TOPIC: (("speed", "fast"), ("direction", 45), ("deviceId", 7)),
    TRAFFIC_TOPIC: (("location", "M6 J4"), ("cameraId", 123), ("snapshot", False)),
    WEATHER_TOPIC: (("temperature", "warm"), ("humidity", "high"), ("location", [51.5])),
    EMERGENCY_TOPIC: (("status", True), ("location", "here"), ("incidentId", 99)),
}
_OUT_OF_RANGE: dict[str, tuple[tuple[str, float], ...]] = {
    VEHICLE_TOPIC: (("speed", 412.5), ("speed", -3.0), ("year", 1850), ("location.latitude", 95.25)),
    GPS_TOPIC: (("speed", 301.0), ("speed", -12.0)),
    TRAFFIC_TOPIC: (("location.latitude", -91.0), ("location.longitude", 200.0)),
    WEATHER_TOPIC: (
        ("humidity", 130.0),
        ("temperature", 75.0),
        ("airQualityIndex", -5.0),
        ("windSpeed", -2.0),
    ),
    EMERGENCY_TOPIC: (("location.longitude", -190.0), ("location.latitude", 90.5)),
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


class _BadPlan:
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


class Fleet:
    """The whole fleet; `ticks()` yields each tick's records (all vehicles) as one list."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        routes = parse_routes(config.routes)
        self.roads = {r.name: RouteField(r, config.seed) for r in routes}
        self.vehicles = [
            Vehicle(
                i,
                routes[i % len(routes)],
                self.roads[routes[i % len(routes)].name],
                config.seed,
                config.wire_format,
            )
            for i in range(config.vehicles)
        ]
        self.emitted = 0
        self.ticks_done = 0
        self.truncated = False  # max_events ended the run before every vehicle had arrived

    @property
    def arrived(self) -> int:
        return sum(v.done for v in self.vehicles)

    @property
    def all_arrived(self) -> bool:
        return all(v.done for v in self.vehicles)

    def ticks(self) -> Iterator[tuple[list[tuple[str, bytes, bytes]], dict[int, str]]]:
        """Tick by tick until every vehicle has arrived or `max_events` is reached: the tick's
        records `(topic, value, key)` — the argument order of `Producer.produce` — and the
        malformed ones among them, {position in the list: defect}."""
        cfg = self.config
        dt = cfg.tick_seconds
        limit = cfg.max_events
        plan = _BadPlan(cfg.seed, cfg.bad_ratio) if cfg.bad_ratio > 0 else None
        naive = cfg.wire_format == "seed"
        start = cfg.start_time
        run_started = datetime.now(UTC)
        active = list(self.vehicles)
        # each vehicle's timestamp suffix: its stagger in whole milliseconds
        stagger_ms = [f".{v.stagger // timedelta(milliseconds=1):03d}" for v in active]
        tick = 0
        if limit == 0:
            return
        while active:
            out: list[tuple[str, bytes, bytes]] = []
            tick_time = start + timedelta(seconds=tick * dt)
            if cfg.realtime:
                hours = (datetime.now(UTC) - run_started).total_seconds() / 3600
            else:
                hours = tick * dt / 3600
            if not cfg.realtime and tick_time.microsecond == 0:
                # a whole second plus a stagger < 1 s: the same second, minute and hour, so
                # `(tick_time + stagger).isoformat(timespec="milliseconds")` is a concatenation
                at = tick_time.replace(tzinfo=None) if naive else tick_time
                iso = at.isoformat(timespec="seconds")
                second, offset = iso[:19], iso[19:]
                hour_of_day = at.hour + at.minute / 60
                for v in active:
                    v.step(f"{second}{stagger_ms[v.index]}{offset}", hours, hour_of_day, dt, out)
            else:
                for v in active:
                    at = datetime.now(UTC) if cfg.realtime else tick_time + v.stagger
                    if naive:  # the seed's producers sent naive isoformat (meaning UTC)
                        at = at.replace(tzinfo=None)
                    hour_of_day = at.hour + at.minute / 60
                    v.step(at.isoformat(timespec="milliseconds"), hours, hour_of_day, dt, out)
            active = [v for v in active if not v.done]
            if limit is not None and self.emitted + len(out) >= limit:
                self.truncated = self.emitted + len(out) > limit or bool(active)
                del out[limit - self.emitted :]
            defects: dict[int, str] = {}
            if plan is not None:
                base = self.emitted
                for pos in plan.below(base + len(out)):
                    topic, value, key = out[pos - base]
                    bad, defect = corrupt(topic, value, plan.rng)
                    out[pos - base] = (topic, bad, key)
                    defects[pos - base] = defect
            self.emitted += len(out)
            self.ticks_done = tick + 1
            yield out, defects
            if limit is not None and self.emitted >= limit:
                return
            tick += 1


def iter_records(config: SimConfig) -> Iterator[SimRecord]:
    """Every record the simulator would produce for `config`, in order, without Kafka."""
    for chunk, defects in Fleet(config).ticks():
        for i, (topic, value, key) in enumerate(chunk):
            yield SimRecord(topic, key, value, defects.get(i))
