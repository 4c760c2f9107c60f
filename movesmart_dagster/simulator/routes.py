"""Routes the simulated fleet drives: built-in city pairs (both directions) and custom ones.

Why routes are data, and arrival is by distance: the seed decided "arrived" by comparing
coordinates (`lat >= end_lat and lon <= end_lon`), which only works for one compass
direction; on any other route the loop never ended. Here a vehicle has arrived when the
distance it has driven reaches the route's length, which is direction-agnostic, and a
route is nothing but two named points, so adding one is one line in `_PAIRS`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0088

_COMPASS = ("North", "North-East", "East", "South-East", "South", "South-West", "West", "North-West")


@dataclass(frozen=True)
class Place:
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Route:
    """A straight-ish drive from `start` to `end` (the fleet adds a gentle, smooth curve)."""

    name: str
    start: Place
    end: Place

    @property
    def distance_km(self) -> float:
        return haversine_km(self.start.latitude, self.start.longitude, self.end.latitude, self.end.longitude)

    @property
    def code(self) -> str:
        """Short upper-case tag used in camera ids, e.g. LON-BIR."""
        return f"{self.start.name[:3].upper()}-{self.end.name[:3].upper()}"

    def reversed(self) -> Route:
        return Route(f"{_slug(self.end.name)}-{_slug(self.start.name)}", self.end, self.start)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


LONDON = Place("London", 51.5074, -0.1278)
BIRMINGHAM = Place("Birmingham", 52.4862, -1.8904)
MANCHESTER = Place("Manchester", 53.4808, -2.2426)
LEEDS = Place("Leeds", 53.8008, -1.5491)
BRISTOL = Place("Bristol", 51.4545, -2.5879)
CARDIFF = Place("Cardiff", 51.4816, -3.1791)
EDINBURGH = Place("Edinburgh", 55.9533, -3.1883)
GLASGOW = Place("Glasgow", 55.8642, -4.2518)
NEWCASTLE = Place("Newcastle", 54.9783, -1.6178)
YORK = Place("York", 53.9600, -1.0873)
CAMBRIDGE = Place("Cambridge", 52.2053, 0.1218)

# One line per city pair; each is also driven the other way. Together they head in every
# quadrant (the seed's bug hid in all but one) and one crosses the prime meridian.
_PAIRS: tuple[tuple[Place, Place], ...] = (
    (LONDON, BIRMINGHAM),  # the seed's route: north-west
    (MANCHESTER, LEEDS),  # north-east
    (BRISTOL, CARDIFF),  # west
    (EDINBURGH, GLASGOW),  # west-south-west
    (NEWCASTLE, YORK),  # south-south-east
    (LONDON, CAMBRIDGE),  # north-east, longitude changes sign
)


def _builtin() -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for a, b in _PAIRS:
        forward = Route(f"{_slug(a.name)}-{_slug(b.name)}", a, b)
        for r in (forward, forward.reversed()):
            routes[r.name] = r
    return routes


BUILTIN_ROUTES: dict[str, Route] = _builtin()
DEFAULT_ROUTE = "london-birmingham"

_NUM = r"[-+]?\d+(?:\.\d+)?"
_CUSTOM = re.compile(rf"^\s*({_NUM})\s*,\s*({_NUM})\s*:\s*({_NUM})\s*,\s*({_NUM})\s*$")


class RouteError(ValueError):
    """A route name or spec that cannot be driven; the message says what is accepted."""


def parse_route(spec: str) -> Route:
    """A built-in route name (e.g. `london-birmingham`) or `lat,lon:lat,lon`."""
    name = spec.strip().lower()
    if name in BUILTIN_ROUTES:
        return BUILTIN_ROUTES[name]
    m = _CUSTOM.match(spec)
    if not m:
        raise RouteError(
            f"unknown route {spec!r}: use one of {', '.join(sorted(BUILTIN_ROUTES))}, 'all', "
            "or custom coordinates 'lat,lon:lat,lon'"
        )
    lat1, lon1, lat2, lon2 = (float(g) for g in m.groups())
    for lat, lon in ((lat1, lon1), (lat2, lon2)):
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise RouteError(f"route {spec!r}: latitude must be in -90..90 and longitude in -180..180")
    route = Route(spec.strip(), Place("Start", lat1, lon1), Place("End", lat2, lon2))
    if not 0.5 <= route.distance_km <= 2000:
        raise RouteError(f"route {spec!r}: length {route.distance_km:.1f} km, expected 0.5..2000 km")
    return route


def parse_routes(specs: list[str] | tuple[str, ...]) -> tuple[Route, ...]:
    """Several specs (comma-free names or custom coordinates); `all` means every built-in route."""
    routes: list[Route] = []
    for spec in specs:
        if spec.strip().lower() == "all":
            routes.extend(BUILTIN_ROUTES.values())
        else:
            routes.append(parse_route(spec))
    if not routes:
        routes.append(BUILTIN_ROUTES[DEFAULT_ROUTE])
    return tuple(routes)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def compass(dlat: float, dlon: float, latitude: float) -> str:
    """8-point compass name of a small displacement (degrees), e.g. `North-East` as the seed sent."""
    angle = math.degrees(math.atan2(dlon * math.cos(math.radians(latitude)), dlat)) % 360
    return _COMPASS[int((angle + 22.5) // 45) % 8]
