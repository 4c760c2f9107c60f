"""Benchmark: broker faults with numbers — records produced, lost, doubled; time to recover.

Two scenarios, each on its own stack (free loopback ports, a temporary home, always stopped):

  outage  one broker stopped for --outage seconds (60) while `movesmart stream` runs and
          `movesmart simulate` produces; the job is relaunched whenever it has exited, as
          the Dagster supervisor does (without its back-off).
  kill    three brokers; kill -9 of the leader of vehicle_data/0 while the job runs and the
          simulator produces; restarted with `movesmart stack up` after --down seconds (30).

Afterwards the job drains (`movesmart stream --available-now`) and the audit counts: Kafka
against the records the simulator generated (lost = sent but absent, doubled = present more
often than sent), and the tables through `movesmart query` against Kafka's offsets. Time to
recover: from the broker's return to the first batch the job commits after it. Prints the
figures and appends them to bench/results/faults.json.

    .venv/bin/python bench/bench_faults.py [--scenario outage|kill|both] [--outage 60] [--down 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from report import RESULTS as RESULTS_DIR  # noqa: E402
from report import append_history, git_commit, load_1m  # noqa: E402

from movesmart_dagster.settings import Settings, load_settings  # noqa: E402
from movesmart_dagster.simulator import SimConfig, iter_records  # noqa: E402
from movesmart_dagster.stack.audit import (  # noqa: E402
    audit_kafka,
    audit_tables,
    partition_leaders,
    records_in_kafka,
    replica_state,
)
from movesmart_dagster.stack.kafka_broker import KafkaBroker  # noqa: E402
from movesmart_dagster.stack.processes import free_port, free_port_block, pid_alive  # noqa: E402
from movesmart_dagster.streaming.progress import iter_all  # noqa: E402

RESULTS = RESULTS_DIR / "faults.json"
MOVESMART = [sys.executable, "-m", "movesmart_dagster.cli"]
SPARK_ENV = {"MOVESMART_SPARK_MASTER": "local[2]", "MOVESMART_SPARK_DRIVER_MEMORY": "1g"}
# 60 vehicles on the default route produce ~360,000 records before all arrive: more than a run needs
SIM = {"vehicles": 60, "seed": 11, "bad_ratio": 0.02}
WARMUP = {"vehicles": 2, "seed": 10, "max_events": 2_000}  # the job's first batch, before the fault


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


class Job:
    """`movesmart stream`, relaunched whenever it has exited (the supervisor's part)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = {**os.environ, **SPARK_ENV, **env}, logs, []
        self.exits: dict[int, tuple[float, int]] = {}  # launch index -> (monotonic time seen, exit code)

    def launch(self) -> None:
        log = open(self.logs / f"stream-{len(self.procs)}.log", "w")  # noqa: SIM115 - lives with the process
        self.procs.append(
            subprocess.Popen(
                [*MOVESMART, "stream", "--trigger-interval", "5 seconds"],
                env=self.env,
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        )

    def note_exit(self) -> bool:
        """Record the current launch's exit once; True if it has exited."""
        code = self.procs[-1].poll()
        if code is not None:
            self.exits.setdefault(len(self.procs) - 1, (time.monotonic(), code))
        return code is not None

    def keep_alive(self) -> None:
        if self.note_exit():
            self.launch()

    def stop(self) -> int:
        proc = self.procs[-1]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(300)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)


def batches(settings: Settings) -> int:
    return sum(1 for _ in iter_all(settings.progress_log))


def simulate(env: dict[str, str], summary: Path, events: int, rate: int) -> subprocess.Popen:
    flags = [
        "--vehicles",
        str(SIM["vehicles"]),
        "--seed",
        str(SIM["seed"]),
        "--bad-ratio",
        str(SIM["bad_ratio"]),
    ]
    return subprocess.Popen(
        [*MOVESMART, "simulate", "--no-progress", "--summary-json", str(summary), "--rate", str(rate)]
        + ["--max-events", str(events), *flags],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def warm_up_then_simulate(
    settings: Settings, env: dict[str, str], job: Job, home: Path, events: int, rate: int
) -> subprocess.Popen:
    """A small backlog, the job's first batch of it, then the simulator producing live: the fault
    then hits a running job and a running producer."""
    flags = [f"--{k.replace('_', '-')}" if i == 0 else str(v) for k, v in WARMUP.items() for i in (0, 1)]
    subprocess.run([*MOVESMART, "simulate", "--no-progress", *flags], env={**os.environ, **env}, check=True)
    job.launch()
    wait_until(lambda: batches(settings) >= 1, 600, "the job's first batch")
    sim = simulate(env, home / "summary.json", events, rate)
    wait_until(lambda: records_in_kafka(settings) >= WARMUP["max_events"] + events // 5, 300, "live records")
    return sim


def finish(
    settings: Settings, env: dict[str, str], job: Job, sim: subprocess.Popen, summary: Path, events: int
) -> dict:
    """Wait for the simulator, stop the job, drain, audit Kafka and the tables."""
    out, err = sim.communicate(timeout=900)
    if sim.returncode != 0:
        raise RuntimeError(f"simulate exited {sim.returncode}: {err[-2000:]}{out[-1000:]}")
    sent_summary = json.loads(summary.read_text())
    stopped = job.stop()
    drain = subprocess.run(
        [*MOVESMART, "stream", "--available-now"],
        env=job.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if drain.returncode != 0:
        raise RuntimeError(f"drain failed: {drain.stderr[-2000:]}")
    sent = [
        (r.topic, r.key, r.value)
        for config in (SimConfig(**WARMUP), SimConfig(max_events=events, **SIM))
        for r in iter_records(config)
    ]
    kafka = audit_kafka(settings, sent)
    tables = audit_tables(settings, env)
    return {
        "simulator_exit": sim.returncode,
        "produced": sent_summary["total"] + WARMUP["max_events"],
        "acknowledged": sent_summary["delivered"] + WARMUP["max_events"],
        "failed_deliveries": sent_summary["failed_total"],
        "kafka": {
            "in_kafka": kafka.in_kafka,
            "lost": kafka.lost,
            "doubled": kafka.doubled,
            "lost_per_topic": kafka.lost_per_topic,
            "doubled_per_topic": kafka.doubled_per_topic,
        },
        "tables": {
            "rows": tables.rows,
            "quarantined": tables.quarantined,
            "lost": tables.lost,
            "doubled": tables.doubled,
            "beyond": tables.beyond,
        },
        "job_stop_exit": stopped,
    }


def outage(outage_s: float, events: int, rate: int, home: Path) -> dict:
    env = {
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    job = Job(env, home)
    sim = None
    try:
        broker.up()
        sim = warm_up_then_simulate(settings, env, job, home, events, rate)
        produced_at_stop = records_in_kafka(settings)
        broker.down()
        stopped_at = time.monotonic()
        while time.monotonic() - stopped_at < outage_s:  # the outage; note whether the job exits
            job.note_exit()
            time.sleep(0.5)
        producing = sim.poll() is None
        broker.up()
        back_at = time.monotonic()
        in_kafka_after_restart = records_in_kafka(settings)  # below the figure at the stop = acked data lost
        before = batches(settings)

        def committed() -> bool:
            job.keep_alive()
            return batches(settings) > before

        recover_s = wait_until(committed, 600, "a batch after the outage")
        result = finish(settings, env, job, sim, home / "summary.json", events)
        result.update(
            scenario="outage",
            outage_s=round(back_at - stopped_at, 1),
            records_in_kafka_at_stop=produced_at_stop,
            records_in_kafka_after_restart=in_kafka_after_restart,
            simulator_producing_through_outage=producing,
            job_exits=[
                {"after_outage_began_s": round(t - stopped_at, 1), "exit": c} for t, c in job.exits.values()
            ],
            relaunches=len(job.procs) - 1,
            time_to_recover_s=round(recover_s, 1),
        )
        return result
    finally:
        job.kill_all()
        if sim is not None and sim.poll() is None:
            sim.kill()
        broker.down()


def kill(down_s: float, events: int, rate: int, home: Path) -> dict:
    base = free_port_block(6)
    env = {
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(f"localhost:{base + 2 * i}" for i in range(3)),
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(base + 1),
    }
    settings = load_settings(env)
    cluster = KafkaBroker(settings, heap="512m", brokers=3)
    job = Job(env, home)
    sim = None
    try:
        cluster.up()
        sim = warm_up_then_simulate(settings, env, job, home, events, rate)
        victim = partition_leaders(settings, "vehicle_data")[0]
        pid = next(n.pid for n in cluster.status().nodes if n.node_id == victim)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not pid_alive(pid), 30, "the broker to die", every=0.05)
        failover_s = wait_until(
            lambda: all(x not in (victim, -1) for x in partition_leaders(settings, "vehicle_data").values()),
            120,
            "new leaders",
            every=0.1,
        )
        before = batches(settings)
        while time.monotonic() - killed_at < down_s:
            job.keep_alive()
            time.sleep(0.5)
        committed_while_down = batches(settings) - before
        producing = sim.poll() is None
        restart = subprocess.run(
            [*MOVESMART, "stack", "up"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if restart.returncode != 0:
            raise RuntimeError(f"stack up failed: {restart.stderr}")
        back_at = time.monotonic()
        isr_s = wait_until(lambda: set(replica_state(settings).values()) == {(3, 3)}, 600, "ISR back to 3")
        result = finish(settings, env, job, sim, home / "summary.json", events)
        result.update(
            scenario="kill",
            killed_broker=victim,
            down_s=round(back_at - killed_at, 1),
            time_to_new_leaders_s=round(failover_s, 2),
            batches_committed_while_down=committed_while_down,
            simulator_producing_through_down=producing,
            job_exits=[{"after_kill_s": round(t - killed_at, 1), "exit": c} for t, c in job.exits.values()],
            relaunches=len(job.procs) - 1,
            time_to_full_isr_after_restart_s=round(isr_s, 1),
        )
        return result
    finally:
        job.kill_all()
        if sim is not None and sim.poll() is None:
            sim.kill()
        cluster.down()


def _print(result: dict) -> None:
    k, t = result["kafka"], result["tables"]
    print(
        f"[{result['scenario']}] produced {result['produced']:,}, acknowledged {result['acknowledged']:,}, "
        f"simulator exit {result['simulator_exit']}; Kafka: lost {k['lost']}, doubled {k['doubled']}; "
        f"tables: {t['rows']:,} rows ({t['quarantined']:,} quarantined), lost {t['lost']}, doubled {t['doubled']}"
    )
    extra = {k: v for k, v in result.items() if k not in ("kafka", "tables", "scenario")}
    print(f"[{result['scenario']}] " + ", ".join(f"{k}={v}" for k, v in extra.items()), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=["outage", "kill", "both"], default="both")
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the single broker stays stopped")
    ap.add_argument("--down", type=float, default=30.0, help="seconds the killed broker stays down")
    ap.add_argument("--rate", type=int, default=2000, help="simulator events/s")
    ap.add_argument("--events", type=int, default=240_000)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args()
    results = []
    for name in ("outage", "kill") if args.scenario == "both" else (args.scenario,):
        home = Path(tempfile.mkdtemp(prefix=f"movesmart-fault-{name}-"))
        try:
            if name == "outage":
                result = outage(args.outage, args.events, args.rate, home)
            else:
                result = kill(args.down, args.events, args.rate, home)
        except Exception:
            print(f"[{name}] failed; its home is kept: {home}", file=sys.stderr)
            raise
        _print(result)
        if result["kafka"]["lost"] or result["kafka"]["doubled"] or result["tables"]["lost"]:
            print(f"[{name}] not exact; its home is kept: {home}", flush=True)
        else:
            shutil.rmtree(home, ignore_errors=True)
        results.append(result)
    if not args.no_record:
        commit = git_commit()
        rows = [
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": commit,
                "load_1m": load_1m(),
                **r,
            }
            for r in results
        ]
        append_history(RESULTS, rows, indent=1)
    ok = all(
        r["kafka"]["lost"] == r["kafka"]["doubled"] == r["tables"]["lost"] == r["tables"]["doubled"] == 0
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
