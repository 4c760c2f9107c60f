"""Benchmark: events/s of `movesmart simulate --rate 0` into a local broker, whole process.

Why whole process: what matters to a user is how long the command takes, so the clock
runs from spawning `movesmart simulate` until it exits (interpreter start, broker
check, generation, produce, and the final flush until every record is acknowledged).
The in-process rate the simulator reports itself is printed beside it.

The script starts its own broker on free loopback ports under a temporary home, so it
never touches a developer's stack, and always stops it. Each run appends a row to
bench/results/simulator.json.

    .venv/bin/python bench/bench_simulator.py [--events 2000000] [--vehicles 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.stack.kafka_broker import KafkaBroker  # noqa: E402
from movesmart_dagster.stack.processes import free_port  # noqa: E402

RESULTS = REPO / "bench" / "results" / "simulator.json"


def _machine() -> dict[str, object]:
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "mem_gb": mem_gb,
        "python": platform.python_version(),
        "load_1m_before": round(load, 2) if load is not None else None,
    }


def _git_commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/results/simulator.json")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="movesmart-bench-"))
    env = {
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    broker = KafkaBroker(load_settings(env), heap="1g")
    machine = _machine()
    cmd = [
        sys.executable,
        "-m",
        "movesmart_dagster.cli",
        "simulate",
        "--rate",
        "0",
        "--max-events",
        str(args.events),
        "--vehicles",
        str(args.vehicles),
        "--routes",
        "all",
        "--no-progress",
    ]
    runs: list[dict[str, float]] = []
    try:
        broker.up()
        for i in range(args.repeat):
            summary_file = home / f"summary-{i}.json"
            started = time.monotonic()
            proc = subprocess.run(
                [*cmd, "--seed", str(i + 1), "--summary-json", str(summary_file)],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
            )
            wall = time.monotonic() - started
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            summary = json.loads(summary_file.read_text())
            assert summary["total"] == args.events and summary["failed_total"] == 0, summary
            runs.append(
                {
                    "wall_s": wall,
                    "events_per_s": args.events / wall,
                    "in_process_events_per_s": summary["events_per_s"],
                }
            )
            print(
                f"run {i + 1}: {args.events:,} events in {wall:.2f}s = {args.events / wall:,.0f} events/s "
                f"(whole process; in-process {summary['events_per_s']:,.0f}/s)"
            )
    finally:
        broker.down()
        shutil.rmtree(home, ignore_errors=True)

    median = statistics.median(r["events_per_s"] for r in runs)
    print(
        f"median: {median:,.0f} events/s over {len(runs)} runs ({machine['cores']} cores, {machine['mem_gb']} GB)"
    )
    if not args.no_record:
        row = {
            "benchmark": "simulator",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "events": args.events,
            "vehicles": args.vehicles,
            "median_events_per_s": round(median),
            "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
            "machine": machine,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        rows.append(row)
        RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"recorded in {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
