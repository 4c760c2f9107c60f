"""The Move Smart city simulator: the data source for development, tests, demos and benchmarks.

A fleet of vehicles drives between cities (`routes`), each tick sending vehicle, gps,
traffic and weather readings and, rarely, emergencies (`fleet`), into the five Kafka
topics (`producer`); `movesmart simulate` is the command (`cli`). At `--rate 0` worker
processes build the records while the command only produces (`shards`, `worker`).

Python API for other code:
- `iter_records(SimConfig(...))` yields every record (topic, key, value, defect) without Kafka;
- `run_simulation(SimConfig(...), settings, rate=..., duration_s=...)` produces into Kafka
  and returns a `RunSummary` (per-topic counts, failed deliveries);
- `produce_events(settings, events, seed=...)` is the short form of the latter.

The names are imported on first use: a worker process imports `fleet` alone, without the
producer's settings (pydantic) and Kafka modules, so that it starts in a fraction of the time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "DEFAULT_START": "fleet",
    "SimConfig": "fleet",
    "SimRecord": "fleet",
    "iter_records": "fleet",
    "DEFECTS": "malformed",
    "expected_bad_count": "malformed",
    "BrokerUnreachable": "producer",
    "RunSummary": "producer",
    "check_broker": "producer",
    "produce_events": "producer",
    "run_simulation": "producer",
    "BUILTIN_ROUTES": "routes",
    "DEFAULT_ROUTE": "routes",
    "Route": "routes",
}

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
]  # the same names as _HOME's keys (a literal, for linters and type checkers)


def __getattr__(name: str) -> Any:
    if name not in _HOME:  # e.g. a submodule not imported yet: the import system then loads it
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
