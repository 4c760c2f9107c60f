"""Weather, traffic and road shape along a route: smooth fields, seeded per route.

Why its own module: the fleet's vehicles read these fields; the fields themselves (their
shapes, amplitudes, rush hours) change for reasons of their own — a more realistic city —
and are shared by every vehicle on the route, so the weather a route reports is consistent.
"""

from __future__ import annotations

import math
import random

from movesmart_dagster.simulator.routes import Route

_TWO_PI = 2 * math.pi


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
