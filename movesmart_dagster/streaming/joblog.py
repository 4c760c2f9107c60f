"""The streaming job's log: stderr lines prefixed `[movesmart stream]`.

Why one function in its own module: every part of the job logs through it, and the
supervising Dagster run and the benches read these lines (bench_streaming parses the
`batch N committed` line), so their prefix and channel are defined once.
"""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(f"[movesmart stream] {msg}", file=sys.stderr, flush=True)
