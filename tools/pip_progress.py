"""Turn `pip install`'s output into a few progress lines for `make setup`.

Why: with `-q` the pinned install is silent for minutes; without it, it is a wall of ~400
lines. This reads pip's stdout (the Makefile keeps the full text in .venv/pip-install.log)
and prints one line per phase, one per 25 packages collected and one per download of
20 MB or more, each with the time since the install began. Errors are not filtered: pip writes them to stderr, which stays on
the terminal. Runs with the system Python before the virtualenv holds anything: stdlib only.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

_EVERY = 25
_BIG_MB = 20
_SIZE = re.compile(r"\((\d+(?:\.\d+)?) (kB|MB|GB)\)")
_UNIT = {"kB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def follow(lines: TextIO, out: TextIO, clock=time.monotonic) -> None:
    started = clock()
    collected = 0
    downloaded_mb = 0.0
    building_announced = False

    def say(text: str) -> None:
        out.write(f"  [{clock() - started:4.0f} s] {text}\n")
        out.flush()

    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("Collecting ", "Requirement already satisfied: ")):
            collected += 1
            if collected % _EVERY == 0:
                say(f"resolved {collected} packages, downloaded {downloaded_mb:.0f} MB")
        elif stripped.startswith("Downloading ") and (size := _SIZE.search(stripped)):
            mb = float(size.group(1)) * _UNIT[size.group(2)]
            downloaded_mb += mb
            if mb >= _BIG_MB:  # the long waits get a line of their own
                say(f"downloading {stripped.split()[1]} ({mb:.0f} MB)")
        elif stripped.startswith("Building wheels for collected packages:") and not building_announced:
            building_announced = True
            names = stripped.split(":", 1)[1].strip()
            say(f"resolved {collected} packages ({downloaded_mb:.0f} MB downloaded); building {names}")
        elif stripped.startswith("Installing collected packages:"):
            count = len(stripped.split(":", 1)[1].split(","))
            say(f"installing {count} packages into .venv")
        elif stripped.startswith("Successfully installed "):
            say(f"installed {len(stripped.split()) - 2} packages")
    if collected and not building_announced:
        say(f"resolved {collected} packages")


if __name__ == "__main__":
    follow(sys.stdin, sys.stdout)
