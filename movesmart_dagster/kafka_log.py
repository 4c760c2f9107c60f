"""librdkafka's own log lines: warnings and errors through Python logging, nothing at info.

Why: a confluent-kafka client prints librdkafka's lines straight to stderr in its own format
(`%6|…|BGQUEUE| Purging 1 unserved events` when a dropped client still had queued events,
`%3|…|FAIL|` per reconnect), in the `make dev` terminal between Dagster's lines. Every client
we create takes `client_logging()`: librdkafka then emits nothing below the level of the
`movesmart_dagster.kafka` logger (WARNING unless a command lowers it, e.g. `movesmart
simulate -v`), and hands what it emits to that logger — so warnings and errors reach whatever
Python logging shows (Dagster's handlers in a run, stderr in a plain command). confluent-kafka
delivers them when the client is polled.
"""

from __future__ import annotations

import logging
from typing import Any

KAFKA_LOG = logging.getLogger("movesmart_dagster.kafka")
KAFKA_LOG.setLevel(logging.WARNING)

# Python level -> librdkafka `log_level` (syslog: 7 debug, 6 info, 4 warning, 3 error, 2 critical)
_SYSLOG_LEVELS = ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3))


def client_logging(logger: logging.Logger = KAFKA_LOG) -> dict[str, Any]:
    """The librdkafka settings that route its log lines to `logger`, at that logger's level."""
    level = logger.getEffectiveLevel()
    syslog = next((syslog for python, syslog in _SYSLOG_LEVELS if level <= python), 2)
    return {"logger": logger, "log_level": syslog}


def probe_logging() -> dict[str, Any]:
    """For a client whose failures are the expected answer (is the broker up yet?): silent."""
    return {"logger": KAFKA_LOG, "log_level": 0}
