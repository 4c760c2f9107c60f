"""`make bench`: every benchmark in bench/, one after the other (they must not share the cores).

Each script starts and stops its own services and writes its results under bench/results/.
Extra arguments are not passed through: run a script directly to change its parameters.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    "bench_simulator.py",
    "bench_streaming.py",
    "bench_compaction.py",
    "bench_checks.py",
    "bench_faults.py",
]


def main() -> int:
    failed = []
    for name in SCRIPTS:
        script = BENCH / name
        if not script.exists():
            print(f"[bench] {name}: not present, skipped", flush=True)
            continue
        print(f"[bench] {name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=BENCH.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"[bench] results in {BENCH / 'results'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
