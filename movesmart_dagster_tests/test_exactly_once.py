"""Exactly once by Iceberg snapshots across kill -9 of the driver (Python and its JVM).

One broker and one warehouse for the module, mutated in order: each run of the real job is
killed at a chosen point of a batch's commits (fault injection: while the data files are
written, between two tables' commits, after every table committed but before Spark's own
commit, at the batch's start) or at a random moment; after each crash a reader of the
catalog must see no record twice and no batch committed twice to a table, and after a final
clean drain every Kafka offset is exactly one row, read by DuckDB over pyiceberg's scan
plan, by pyiceberg and by Spark's Iceberg catalog alike. SIGTERM stops the job cleanly.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.streaming.progress import iter_all
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_streaming_support import (
    MOVESMART,
    REPO,
    SPARK_ENV,
    batches_committed_twice,
    check_exact,
    check_no_duplicates,
    check_readers_agree,
    landed,
    run_cli,
    simulate,
)

BATCH = "1500"  # records per micro-batch: the backlog takes many batches


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Settings]]:
    env = stack_env(tmp_path_factory.mktemp("eo-home"))
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        simulate(env, "--vehicles", "4", "--seed", "3", "--max-events", "12000", "--bad-ratio", "0.03")
        yield env, settings
    finally:
        broker.down()


def _no_jvm_left(home: str) -> None:
    """No process (the job's Python or its Spark JVM) of this home survives."""
    marker = f"MOVESMART_HOME={home}\0"
    left = [int(p) for p in os.listdir("/proc") if p.isdigit() and marker in _environ(int(p))]
    left = [p for p in left if p != os.getpid()]
    assert not left, f"processes left: {left}"


def _environ(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read().decode(errors="replace") + "\0"
    except OSError:
        return ""


@pytest.mark.parametrize(
    "fault",
    ["mid_write:batch=1", "after_first_table:batch=2", "after_commit:batch=3", "after_first_table:batch=4"],
)
def test_kill_at_protocol_points_leaves_no_duplicates(
    stack: tuple[dict[str, str], Settings], fault: str
) -> None:
    env, settings = stack
    run = run_cli(
        {**env, "MOVESMART_FAULT_POINT": fault},
        "stream",
        "--available-now",
        "--max-offsets-per-trigger",
        BATCH,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
    assert f"fault injection: kill -9 at {fault.split(':')[0]}" in run.stderr
    check_no_duplicates(landed(settings))
    assert not batches_committed_twice(settings)
    _no_jvm_left(env["MOVESMART_HOME"])


def test_random_kill_then_restart_is_exact(stack: tuple[dict[str, str], Settings]) -> None:
    env, settings = stack
    rnd = random.Random(os.getpid())
    for _ in range(2):
        proc = subprocess.Popen(
            [*MOVESMART, "stream", "--trigger-interval", "1 second", "--max-offsets-per-trigger", "700"],
            env={**os.environ, **SPARK_ENV, **env},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: the JVM pyspark starts is in it too
        )
        try:
            time.sleep(rnd.uniform(14, 24))
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        check_no_duplicates(landed(settings))
    final = run_cli(env, "stream", "--available-now")
    assert final.returncode == 0, final.stderr[-3000:]
    counts = check_exact(settings)
    assert sum(g + b for g, b in counts.values()) == 12000
    assert not batches_committed_twice(settings)
    check_readers_agree(env, settings)
    # progress: every batch of the final query reported once
    batches = [b.batch_id for b in iter_all(settings.progress_log)]
    assert len(batches) == len(set(batches))
    _no_jvm_left(env["MOVESMART_HOME"])


def test_sigterm_stops_after_the_current_batch(stack: tuple[dict[str, str], Settings]) -> None:
    env, settings = stack
    simulate(env, "--vehicles", "2", "--seed", "4", "--max-events", "3000")
    lines_before = len(list(iter_all(settings.progress_log)))
    proc = subprocess.Popen(
        [*MOVESMART, "stream", "--trigger-interval", "2 seconds", "--max-offsets-per-trigger", "500"],
        env={**os.environ, **SPARK_ENV, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while len(list(iter_all(settings.progress_log))) == lines_before and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to the Python driver only, as the Dagster op does
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    assert "stop requested" in err and "stopped after" in err
    check_no_duplicates(landed(settings))
    final = run_cli(env, "stream", "--available-now")
    assert final.returncode == 0, final.stderr[-3000:]
    counts = check_exact(settings)
    assert sum(g + b for g, b in counts.values()) == 15000


# a query run that fails after its second batch's first append, then a new run of the same
# StreamJob in the same process (as a caller embedding the job could do): the new run must
# search the tables' histories for the failed batch, not trust what the failed run finished
_RESTART_IN_PROCESS = """
import sys
from movesmart_dagster.settings import load_settings
from movesmart_dagster.streaming.options import JobOptions
from movesmart_dagster.streaming.query import StreamJob

job = StreamJob(load_settings(), JobOptions(available_now=True, max_offsets_per_trigger=1000))
armed = []

def hit(point, batch_id, spark):
    if point == "after_first_table" and job.batches == 1 and not armed:
        armed.append(batch_id)
        raise RuntimeError(f"test fault after the first append of batch {batch_id}")

job.fault.hit = hit
try:
    first, second = job.run(), job.run()
finally:
    job.stop_spark()
print(first, second, armed[0], job.finished_batch)
sys.exit(0 if (first, second) == (1, 0) else 3)
"""


def test_a_new_query_run_in_the_same_process_re_runs_a_failed_batch_exactly_once(
    stack: tuple[dict[str, str], Settings],
) -> None:
    env, settings = stack
    simulate(env, "--vehicles", "2", "--seed", "5", "--max-events", "3000")
    run = subprocess.run(
        [MOVESMART[0], "-c", _RESTART_IN_PROCESS],
        env={**os.environ, **SPARK_ENV, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    first, second, failed_batch, last = (int(x) for x in run.stdout.split())
    assert (first, second) == (1, 0)
    assert last > failed_batch  # the second run re-ran the failed batch and went on
    assert "test fault after the first append" in run.stderr
    assert "table(s) already held it" in run.stderr  # the re-run found the failed run's append
    assert not batches_committed_twice(settings)
    counts = check_exact(settings)
    assert sum(g + b for g, b in counts.values()) == 18000
    _no_jvm_left(env["MOVESMART_HOME"])
