"""A deliberate stop is not a failure: Ctrl-C of `make dev`, or an interrupt of the streaming run.

Real parts only: a real broker, the simulator, real Spark, a real `dagster dev` started by
`movesmart_dagster.dev` (as `make dev` starts it) with DAGSTER_HOME in tmp. The interrupt is a
real SIGINT, as a terminal's Ctrl-C sends it. After the stop the streaming run must have ended
SUCCESS (make dev) or CANCELED (an interrupt) — never FAILURE, which the next start turned into
a "run failed" alert — no run may be left in progress, no Spark JVM may outlive it, nothing may
print a traceback, and no run ends in FAILURE (what `run_failure_alerts` would alert on).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from movesmart_dagster.defs.keys import STREAMING_JOB_NAME
from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port, stop_group
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_e2e_dagster import jvms_of, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **stack_env(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MOVESMART_SUPERVISOR_INTERVAL_SECONDS": "5",
        "MOVESMART_STREAM_TRIGGER_INTERVAL": "5 seconds",
        "MOVESMART_SPARK_MASTER": "local[2]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "1g",
    }


def _simulate(env: dict[str, str], events: int) -> None:
    sim = subprocess.run(
        [str(BIN / "movesmart"), "simulate", "--vehicles", "3", "--seed", "7", "--max-events", str(events)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sim.returncode == 0, sim.stderr[-2000:]


def _committed_batches(home: Path) -> int:
    log = home / "streaming" / "progress.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _assert_stopped_cleanly(home: Path, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    """The one streaming run ended with `status`, nothing is in progress, and no run-failed alert follows."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=STREAMING_JOB_NAME))
        assert [r.status for r in runs] == [status], [(r.run_id[:8], r.status) for r in runs]
        assert not instance.get_runs(
            filters=dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING,
                ]
            )
        )
        # `run_failure_alerts` alerts on a run that ended in FAILURE: there is none
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    # the streaming job itself was stopped by its op (SIGTERM, after its current batch)
    (child_log,) = (home / "streaming" / "logs").glob(f"*-{runs[0].run_id[:8]}.log")
    assert "[movesmart stream] stopped after" in child_log.read_text()
    assert not jvms_of(home), "a Spark JVM outlived the stop"
    return runs[0]


def _started(instance: dg.DagsterInstance, run_id: str) -> bool:
    """True once the run is STARTED; a run already ended cannot be interrupted, so that fails here."""
    status = instance.get_run_by_id(run_id).status
    assert status not in (
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    ), f"the short run ended ({status}) before Ctrl-C could land"
    return status == dg.DagsterRunStatus.STARTED


def test_ctrl_c_of_make_dev_stops_the_streaming_run_quietly(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    env = {**_env(home), "MOVESMART_DAGSTER_PORT": str(free_port())}
    broker = KafkaBroker(load_settings(env), heap="512m")
    broker.up()  # ours: dev.py leaves a broker it did not start running
    out = tmp_path / "make-dev.log"
    dev = None
    try:
        _simulate(env, 600)
        with open(out, "wb") as log:
            dev = subprocess.Popen(
                [str(BIN / "python"), "-m", "movesmart_dagster.dev", "--no-simulator"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # SIGINT must reach it even if this pytest was started with SIGINT ignored
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        wait_for(lambda: _committed_batches(home) >= 1, 300, "the supervised streaming run to commit a batch")
        # a short run in progress when Ctrl-C lands (as a scheduled maintenance run may be): it may
        # finish. The snapshot-expiry run starts a Spark session, so it is in progress for seconds; the
        # catalog run was in STARTED for ~1 s, and a 2 s poll in CI missed it (the run had ended).
        client = DagsterGraphQLClient("127.0.0.1", port_number=int(env["MOVESMART_DAGSTER_PORT"]))
        short_run_id = client.submit_job_execution("table_snapshots_job")
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            wait_for(
                lambda: _started(instance, short_run_id),
                120,
                "the snapshot-expiry run to start",
                interval=0.2,
            )
        interrupted_at = time.time()
        # Ctrl-C in a terminal: SIGINT to `make dev`'s foreground process (its children have their own sessions)
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=300) == 0
        text = out.read_text(errors="replace")
        for noise in ("Traceback", "Stack Trace", "KeyboardInterrupt\n", " - ERROR - "):
            assert noise not in text, (noise, text[-4000:])
        # it ran until the platform stopped: a success (a run terminated from the UI ends CANCELED)
        assert "run       streaming_job" in text and "SUCCESS" in text, text[-2000:]
        assert text.rstrip().endswith("stopped"), text[-2000:]
        _assert_stopped_cleanly(home, dg.DagsterRunStatus.SUCCESS)
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            short = instance.get_run_record_by_id(short_run_id)
        assert short.dagster_run.status == dg.DagsterRunStatus.SUCCESS, short.dagster_run.status
        assert short.end_time > interrupted_at  # it was still running when Ctrl-C came, and finished
    finally:
        if dev is not None:
            stop_group(dev, signal.SIGTERM, 60)
        broker.down()
        for pid in jvms_of(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


_RUN_STREAMING_JOB = textwrap.dedent(
    """
    import dagster as dg
    from movesmart_dagster.definitions import defs

    with dg.DagsterInstance.get() as instance:
        defs.get_job_def("streaming_job").execute_in_process(instance=instance, raise_on_error=False)
    """
)


def test_an_interrupted_streaming_run_ends_canceled(tmp_path):
    """`dagster dev` run in a terminal: Ctrl-C reaches the run worker itself, with no Terminate
    request before it. The op stops the job cleanly and the run ends CANCELED, not FAILURE."""
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    env = _env(home)
    broker = KafkaBroker(load_settings(env), heap="512m")
    broker.up()
    worker = None
    try:
        _simulate(env, 600)
        worker = subprocess.Popen(
            [str(BIN / "python"), "-c", _RUN_STREAMING_JOB],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        wait_for(lambda: _committed_batches(home) >= 1, 300, "the streaming run to commit a batch")
        worker.send_signal(signal.SIGINT)
        output, _ = worker.communicate(timeout=240)
        assert worker.returncode == 0, output[-4000:]
        run = _assert_stopped_cleanly(home, dg.DagsterRunStatus.CANCELED)
        with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
            events = [e.dagster_event.event_type for e in instance.all_logs(run.run_id) if e.dagster_event]
        assert dg.DagsterEventType.RUN_CANCELED in events, events
        assert dg.DagsterEventType.RUN_FAILURE not in events, events
    finally:
        if worker is not None:
            stop_group(worker, signal.SIGTERM, 60)
        broker.down()
        for pid in jvms_of(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
