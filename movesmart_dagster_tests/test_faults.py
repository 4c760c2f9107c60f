"""Broker faults against real processes on loopback: nothing acknowledged is lost or doubled.

1. Three brokers: kill -9 the node that leads partitions while `movesmart simulate` produces
   (idempotent, acks=all); restart it with `movesmart stack up`. The simulator exits 0 with
   every record acknowledged and Kafka holds exactly the records it generated, once each.
2. One broker stopped mid-stream for a short outage (the 60 s figure is bench/bench_faults.py's):
   the streaming job waits or fails and is relaunched as the supervisor would; after a drain
   every Kafka offset is exactly one row, counted through `movesmart query`.

Every wait polls for its condition with a deadline; the outage itself is the one fixed span.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from movesmart_dagster.settings import load_settings
from movesmart_dagster.simulator import SimConfig, iter_records
from movesmart_dagster.stack.audit import (
    audit_kafka,
    audit_tables,
    partition_leaders,
    records_in_kafka,
    replica_state,
)
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import pid_alive
from movesmart_dagster.streaming.progress import iter_all
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_stack_cluster import MOVESMART, cluster_env
from movesmart_dagster_tests.test_streaming_support import REPO, SPARK_ENV, run_cli, simulate

OUTAGE_S = 15.0  # the single broker's outage in CI


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.3) -> float:
    """Poll `condition` until it holds; returns the seconds it took, fails the test after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def start_simulator(env: dict[str, str], summary: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*MOVESMART, "simulate", "--no-progress", "--summary-json", str(summary), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_of_a_leader_mid_produce_loses_and_doubles_nothing(tmp_path):
    env = cluster_env(str(tmp_path / "home"))
    settings = load_settings(env)
    cluster = KafkaBroker(settings, heap="512m", brokers=3)
    cluster.up()
    sim_args = ("--seed", "21", "--vehicles", "40", "--rate", "5000", "--max-events", "150000")
    summary_file = tmp_path / "summary.json"
    run = None
    try:
        run = start_simulator(env, summary_file, *sim_args)
        wait_until(lambda: records_in_kafka(settings) >= 20_000, 120, "20,000 records in Kafka")
        victim = partition_leaders(settings, "vehicle_data")[0]
        pids = {n.node_id: n.pid for n in cluster.status().nodes}
        os.kill(pids[victim], signal.SIGKILL)
        wait_until(lambda: not pid_alive(pids[victim]), 30, f"broker {victim} to die")
        at_kill = records_in_kafka(settings)
        # its partitions move to the survivors, and the producer keeps going on two brokers
        wait_until(
            lambda: all(
                leader not in (victim, -1) for leader in partition_leaders(settings, "vehicle_data").values()
            ),
            60,
            "new leaders of vehicle_data",
        )
        wait_until(
            lambda: records_in_kafka(settings) >= at_kill + 15_000, 120, "15,000 more records on two brokers"
        )

        restart = subprocess.run(
            [*MOVESMART, "stack", "up"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert restart.returncode == 0, restart.stderr
        after = {n.node_id: n.pid for n in cluster.status().nodes}
        assert after[victim] != pids[victim] and {n: p for n, p in after.items() if n != victim} == {
            n: p for n, p in pids.items() if n != victim
        }

        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:] + out[-2000:]
        summary = json.loads(summary_file.read_text())
        assert summary["total"] == 150_000 and summary["failed_total"] == 0, summary
        # the restarted broker catches up: every partition back to three in-sync replicas
        wait_until(lambda: set(replica_state(settings).values()) == {(3, 3)}, 120, "ISR back to 3")

        sent = [
            (r.topic, r.key, r.value)
            for r in iter_records(SimConfig(vehicles=40, seed=21, max_events=150_000))
        ]
        audit = audit_kafka(settings, sent)
        assert (audit.sent, audit.in_kafka, audit.lost, audit.doubled) == (150_000, 150_000, 0, 0), (
            audit,
            summary,
            err[-3000:],
        )
        assert audit.per_topic == {t: n for t, n in summary["produced"].items() if n}
    finally:
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        cluster.down()


def wait_for_first_batch(settings) -> None:
    """Until the job has committed a batch with rows (four minutes at most)."""
    wait_until(
        lambda: any(b.input_rows for b in committed_batches(settings)),
        240,
        "a first committed batch",
        every=1,
    )


def committed_batches(settings) -> list:
    return list(iter_all(settings.progress_log))


BACKLOG = {"vehicles": 4, "seed": 5, "max_events": 6_000, "bad_ratio": 0.02}
LIVE = {"vehicles": 10, "seed": 6, "max_events": 40_000, "bad_ratio": 0.02}


def sim_flags(config: dict) -> list[str]:
    flags = {
        "vehicles": "--vehicles",
        "seed": "--seed",
        "max_events": "--max-events",
        "bad_ratio": "--bad-ratio",
    }
    return [a for key, value in config.items() for a in (flags[key], str(value))]


@pytest.mark.slow
def test_single_broker_outage_mid_stream_every_offset_exactly_once(tmp_path):
    env = stack_env(tmp_path / "home")
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    summary_file = tmp_path / "summary.json"
    stream_env = {**os.environ, **SPARK_ENV, **env}
    streams: list[subprocess.Popen] = []

    def launch_stream() -> subprocess.Popen:
        proc = subprocess.Popen(
            [*MOVESMART, "stream", "--trigger-interval", "2 seconds"],
            env=stream_env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"stream-{len(streams)}.log", "w"),  # noqa: SIM115 - closed with the process
            start_new_session=True,  # its group holds the Spark JVM too
        )
        streams.append(proc)
        return proc

    run = None
    try:
        backlog = simulate(env, *sim_flags(BACKLOG))
        launch_stream()
        wait_for_first_batch(settings)
        # mid-stream: the job runs and the simulator produces when the broker stops
        run = start_simulator(env, summary_file, "--rate", "2000", *sim_flags(LIVE))
        wait_until(
            lambda: records_in_kafka(settings) >= BACKLOG["max_events"] + 4_000, 120, "live records flowing"
        )
        assert streams[-1].poll() is None and run.poll() is None

        broker.down()
        outage_ends = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_ends:  # the fault's own span; the job may fail meanwhile
            time.sleep(0.5)
        assert run.poll() is None, "the simulator gave up during the outage"
        broker.up()
        committed_before = len(committed_batches(settings))

        def committed_again() -> bool:
            if streams[-1].poll() is not None:  # it failed: relaunch it, as the supervisor does
                launch_stream()
            return len(committed_batches(settings)) > committed_before

        # the job commits again with the broker back (recovered by itself, or relaunched)
        wait_until(committed_again, 240, "a batch after the outage", every=1)

        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:] + out[-2000:]
        summary = json.loads(summary_file.read_text())
        assert summary["total"] == LIVE["max_events"] and summary["failed_total"] == 0, summary
        streams[-1].send_signal(signal.SIGTERM)
        assert streams[-1].wait(180) == 0, (tmp_path / f"stream-{len(streams) - 1}.log").read_text()[-3000:]

        drain = run_cli(env, "stream", "--available-now")
        assert drain.returncode == 0, drain.stderr[-3000:]
        total = BACKLOG["max_events"] + LIVE["max_events"]
        sent = [(r.topic, r.key, r.value) for c in (BACKLOG, LIVE) for r in iter_records(SimConfig(**c))]
        kafka = audit_kafka(settings, sent)
        assert (kafka.in_kafka, kafka.lost, kafka.doubled) == (total, 0, 0)
        tables = audit_tables(settings, env)
        assert (tables.in_kafka, tables.rows, tables.lost, tables.doubled, tables.beyond) == (
            total,
            total,
            0,
            0,
            0,
        )
        assert tables.quarantined == backlog["malformed"] + summary["malformed"] > 0
    finally:
        for proc in streams:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        broker.down()
