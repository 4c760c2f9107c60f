"""The streaming job's run options, as both of its command lines take them.

Why a module of its own: `python -m movesmart_dagster.streaming.job` (argparse, what
Dagster and the benches launch) and `movesmart stream` (click) build the same options
with the same checks and defaults; neither should import the other's command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from movesmart_dagster.settings import SettingsError

# Records per micro-batch (all topics): bounds the cached batch, ~110 bytes per record,
# ~0.55 GB at 5M in the default 2 GB driver (5M in one batch: peak RSS 2.4 GB). A catch-up
# in big batches pays the per-batch planning and task start-up less often: 3M records took
# 39.6 s in 1M batches, 29.4 s in one (2 cores).
DEFAULT_MAX_OFFSETS = 5_000_000
_INTERVAL = re.compile(r"^\s*\d+\s*(milliseconds?|ms|seconds?|s|minutes?|min|hours?|h)\s*$", re.IGNORECASE)


def check_interval(text: str) -> str:
    """A trigger interval Spark understands, e.g. '10 seconds', '500 milliseconds', '1 minute'."""
    if not _INTERVAL.match(text):
        raise SettingsError(f"invalid --trigger-interval {text!r}: expected e.g. '10 seconds' or '1 minute'")
    return text.strip()


@dataclass(frozen=True)
class JobOptions:
    trigger_interval: str | None = None  # default: MOVESMART_STREAM_TRIGGER_INTERVAL
    max_offsets_per_trigger: int | None = DEFAULT_MAX_OFFSETS
    available_now: bool = False
    checkpoint: str | None = None  # default: <checkpoint_root>/stream
    app_name: str = "movesmart-stream"
    spark_conf: tuple[tuple[str, str], ...] = ()  # `--conf KEY=VALUE`: on top of the derived settings


def parse_conf(pairs: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`KEY=VALUE` pairs, as `spark-submit --conf` takes them."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"invalid --conf {pair!r}: expected KEY=VALUE")
        parsed.append((key.strip(), value))
    return tuple(parsed)
