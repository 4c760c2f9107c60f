"""Measure the event-log rows the streaming run writes per hour at a steady event rate.

Starts its own broker (temporary MOVESMART_HOME, free ports), runs `streaming_job` in a child
process against a temporary DAGSTER_HOME (the real op, the real Spark job), feeds it with
`movesmart simulate --realtime --rate R` for the given duration, stops the run with SIGINT
(the op reports what is pending, as on any stop) and counts, in that instance's event log,
the materializations per table and every event of the run. Prints one JSON document.

    .venv/bin/python tools/measure_event_log.py --rate 2000 --minutes 10
    .venv/bin/python tools/measure_event_log.py --count /tmp/movesmart-eventlog-xyz   # count again

The hours are the run's own (its start to its end, from the run record), Spark's start included.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from movesmart_dagster.stack.processes import free_port

BIN = Path(sys.executable).parent
RUN_JOB = """
import dagster as dg
from movesmart_dagster.definitions import defs
with dg.DagsterInstance.get() as instance:
    defs.resolve_job_def("streaming_job").execute_in_process(instance=instance, raise_on_error=False)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=2000)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--vehicles", type=int, default=400)
    p.add_argument("--count", type=Path, default=None, help="only count the run kept in this home")
    args = p.parse_args()
    if args.count:
        print(json.dumps(count(args.count, args.rate), indent=2))
        return 0

    home = Path(tempfile.mkdtemp(prefix="movesmart-eventlog-"))
    env = {
        **os.environ,
        "MOVESMART_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
        "MOVESMART_SPARK_MASTER": "local[2]",
    }
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    subprocess.run([str(BIN / "movesmart"), "stack", "up"], env=env, check=True, capture_output=True)
    job = sim = None
    try:
        job = subprocess.Popen(
            [sys.executable, "-c", RUN_JOB],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(home / "job.log", "wb"),  # noqa: SIM115 - lives as long as the child
            start_new_session=True,
        )
        seconds = args.minutes * 60
        sim = subprocess.Popen(
            [str(BIN / "movesmart"), "simulate", "--realtime", "--rate", str(args.rate)]
            + ["--vehicles", str(args.vehicles), "--routes", "all", "--duration", str(int(seconds) + 60)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(seconds)
        os.killpg(job.pid, signal.SIGINT)
        job.wait(timeout=300)
    finally:
        for proc in (sim, job):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        subprocess.run([str(BIN / "movesmart"), "stack", "down"], env=env, capture_output=True)

    print(json.dumps(count(home, args.rate), indent=2))
    return 0


def count(home: Path, rate: int) -> dict:
    os.environ.update({"MOVESMART_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")})
    import dagster as dg

    from movesmart_dagster.defs.keys import TABLE_KEYS
    from movesmart_dagster.streaming.progress import iter_all

    batches = list(iter_all(home / "streaming" / "progress.jsonl"))
    records = sum(b.input_rows or 0 for b in batches)
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(filters=dg.RunsFilter(job_name="streaming_job"))
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None and record.start_time and record.end_time
        hours = (record.end_time - record.start_time) / 3600
        events = instance.all_logs(run.run_id)
        per_table = {
            table: len(instance.fetch_materializations(key, limit=10_000).records)
            for table, key in TABLE_KEYS.items()
        }
    return {
        "rate_requested": rate,
        "run_status": run.status.value,
        "measured_minutes": round(hours * 60, 1),
        "batches": len(batches),
        "records": records,
        "records_per_s": round(records / (hours * 3600)),
        "materializations_per_table": per_table,
        "materializations_per_table_per_hour": {t: round(n / hours, 1) for t, n in per_table.items()},
        "run_events": len(events),
        "run_events_per_hour": round(len(events) / hours, 1),
        "run_events_by_type": _by_type(events),
        "home": str(home),
    }


def _by_type(events: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        name = e.dagster_event.event_type_value if e.dagster_event else "LOG_MESSAGE"
        counts[name] = counts.get(name, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
