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
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from movesmart_dagster.schemas import EMERGENCY, GPS, TRAFFIC, VEHICLE, WEATHER
from movesmart_dagster.simulator.malformed import BadPlan, corrupt
from movesmart_dagster.simulator.road import RouteField
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
        plan = BadPlan(cfg.seed, cfg.bad_ratio) if cfg.bad_ratio > 0 else None
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
