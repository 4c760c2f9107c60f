"""A generator process of the sharded fleet (`shards.py`): drive vehicles [lo, hi) of a
configuration and write each tick's records to stdout, framed as `shards.py` reads them.

Its own module so that the package does not import it, and `python -m` runs it cleanly.
"""

from __future__ import annotations

import os
import signal
import sys
from array import array
from typing import BinaryIO

from movesmart_dagster.simulator.fleet import Fleet
from movesmart_dagster.simulator.shards import HEADER, TOPIC_CODE, config_from_json


def run(spec: str, lo: int, hi: int, out: BinaryIO) -> None:
    """Drive vehicles [lo, hi) and write one frame per tick to `out` until all have arrived
    or `max_events` of them were written (the producer never needs more from one slice)."""
    config = config_from_json(spec)
    fleet = Fleet(config, range(lo, hi))
    limit, sent = config.max_events, 0
    code_of = TOPIC_CODE.__getitem__
    index_of = {v.key: v.index for v in fleet.vehicles}.__getitem__
    header = HEADER.pack
    for records, driving in fleet.tick_records():
        topics, values, keys = zip(*records, strict=True)
        text = "\n".join(values).encode()  # str values: the generator's JSON, ASCII
        out.write(header(len(records), driving, len(text)))
        out.write(bytes(map(code_of, topics)))
        out.write(array("I", map(index_of, keys)).tobytes())
        out.write(text)
        sent += len(records)
        if limit is not None and sent >= limit:
            break
    out.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the producer decides
    try:
        run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.stdout.buffer)
    except BrokenPipeError:  # the producer has what it needs and closed the pipe
        os._exit(0)
