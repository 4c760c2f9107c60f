"""`make bench`: every benchmark in bench/, one after the other (they must not share the cores),
then the real-time goals from this run's results (`goals.py`).

Each script starts and stops its own services and writes its results under bench/results/.
Extra arguments are not passed through: run a script directly to change its parameters.
`--goals`: only the steps the real-time goals read (simulator, streaming, rate sweep; ~30 min
on the 2-core machine instead of the whole set), then the goals.

    .venv/bin/python bench/run_all.py [--goals]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# each step: the script and its arguments (the rate sweep is goal 3 of the real-time issue)
GOAL_STEPS = [
    ["bench_simulator.py"],
    ["bench_streaming.py"],
    ["bench_streaming.py", "--rate-sweep", "2000,5000,10000,20000", "--window", "45"],
]
SCRIPTS = [*GOAL_STEPS, ["bench_compaction.py"], ["bench_checks.py"], ["bench_faults.py"]]


def main(argv: list[str]) -> int:
    failed = []
    for name, *args in GOAL_STEPS if "--goals" in argv else SCRIPTS:
        script = BENCH / name
        step = " ".join([name, *args])
        if not script.exists():
            print(f"[bench] {name}: not present, skipped", flush=True)
            continue
        print(f"[bench] {step}", flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, str(script), *args], cwd=BENCH.parent).returncode != 0:
            failed.append(step)
        print(f"[bench] {step}: {time.monotonic() - started:.0f} s", flush=True)
    subprocess.run([sys.executable, str(BENCH / "goals.py")], cwd=BENCH.parent)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"[bench] results in {BENCH / 'results'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
