"""The Move Smart city simulator: the data source for development, tests, demos and benchmarks.

A fleet of vehicles drives between cities (`routes`), each tick sending vehicle, gps,
traffic and weather readings and, rarely, emergencies (`fleet`), into the five Kafka
topics (`producer`); `movesmart simulate` is the command (`cli`).

Python API for other code:
- `iter_records(SimConfig(...))` yields every record (topic, key, value, defect) without Kafka;
- `run_simulation(SimConfig(...), settings, rate=..., duration_s=...)` produces into Kafka
  and returns a `RunSummary` (per-topic counts, failed deliveries);
- `produce_events(settings, events, seed=...)` is the short form of the latter.
"""

from movesmart_dagster.simulator.fleet import DEFAULT_START, SimConfig, SimRecord, iter_records
from movesmart_dagster.simulator.malformed import DEFECTS, expected_bad_count
from movesmart_dagster.simulator.producer import (
    BrokerUnreachable,
    RunSummary,
    check_broker,
    produce_events,
    run_simulation,
)
from movesmart_dagster.simulator.routes import BUILTIN_ROUTES, DEFAULT_ROUTE, Route

__all__ = [
    "BUILTIN_ROUTES",
    "DEFAULT_ROUTE",
    "DEFAULT_START",
    "DEFECTS",
    "BrokerUnreachable",
    "Route",
    "RunSummary",
    "SimConfig",
    "SimRecord",
    "check_broker",
    "expected_bad_count",
    "iter_records",
    "produce_events",
    "run_simulation",
]
