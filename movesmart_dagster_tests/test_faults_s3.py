"""Object-store faults against real processes on loopback: no torn table, every offset once.

1. S3 mode (an `s3a://` warehouse on the local endpoint of `movesmart stack up --s3`, the tables
   in the local catalog): the endpoint's server process is frozen (SIGSTOP) for FREEZE_S while a
   batch writes its data files and the simulator produces, then thawed (SIGCONT). The job carries
   on or fails and is relaunched as the supervisor would; after a drain every Kafka offset is
   exactly one row (through `movesmart query`), and every table's current snapshot and history
   read whole through the catalog (no missing manifest or data file).
2. The warehouse disk full (a small tmpfs, local warehouse): the job fails with one line that
   says so; with the space back, the relaunched job resumes and every offset is exactly one row.

Every wait polls for its condition with a deadline; the freeze itself is the one fixed span.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.simulator import SimConfig, iter_records
from movesmart_dagster.stack.audit import audit_kafka, audit_tables, records_in_kafka
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import pid_alive
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint
from movesmart_dagster_tests.conftest import DUMMY_AWS, s3_stack_env, stack_env
from movesmart_dagster_tests.test_faults import (
    committed_batches,
    sim_flags,
    start_simulator,
    wait_for_first_batch,
    wait_until,
)
from movesmart_dagster_tests.test_stack_cluster import MOVESMART
from movesmart_dagster_tests.test_streaming_support import REPO, SPARK_ENV, run_cli, simulate

FREEZE_S = 30.0  # the endpoint's freeze in CI
BUCKET = "movesmart-s3-faults"
BACKLOG = {"vehicles": 4, "seed": 7, "max_events": 4_000, "bad_ratio": 0.02}
LIVE = {"vehicles": 10, "seed": 8, "max_events": 24_000, "bad_ratio": 0.02}  # ~20 s at --rate 1200
LIVE_DISK = {"vehicles": 6, "seed": 9, "max_events": 8_000, "bad_ratio": 0.02}  # at once, on a full disk


class Job:
    """`movesmart stream` in its own process group, relaunched when it has exited (the
    supervisor's part, without its back-off); each launch logs to stream-<n>.log."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = {**os.environ, **SPARK_ENV, **env}
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def launch(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [*MOVESMART, "stream", "--trigger-interval", "2 seconds"],
            env=self.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log(len(self.procs)), "w"),  # noqa: SIM115 - closed with the process
            start_new_session=True,  # its group holds the Spark JVM too
        )
        self.procs.append(proc)
        return proc

    def log(self, index: int) -> Path:
        return self.logs / f"stream-{index}.log"

    @property
    def current(self) -> subprocess.Popen:
        return self.procs[-1]

    def relaunch_if_exited(self) -> None:
        if self.current.poll() is not None:
            self.launch()

    def stop(self) -> None:
        """SIGTERM: the job stops between batches and exits 0."""
        self.current.send_signal(signal.SIGTERM)
        assert self.current.wait(180) == 0, self.log(len(self.procs) - 1).read_text()[-3000:]

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)


def _sent(*configs: dict) -> list[tuple]:
    return [(r.topic, r.key, r.value) for c in configs for r in iter_records(SimConfig(**c))]


def _drain_and_audit(settings: Settings, env: dict[str, str], summaries: list[dict], *configs: dict) -> dict:
    """The job drains what Kafka holds; then the exact audit, and every table read whole."""
    drain = run_cli(env, "stream", "--available-now")
    assert drain.returncode == 0, drain.stderr[-3000:]
    figures = _audit(settings, env, summaries, *configs)
    assert _read_every_table_whole(settings) == figures["rows"]
    return figures


def _audit(settings: Settings, env: dict[str, str], summaries: list[dict], *configs: dict) -> dict:
    """Kafka against what was sent, the tables against Kafka's offsets: exact, or the test fails."""
    total = sum(c["max_events"] for c in configs)
    kafka = audit_kafka(settings, _sent(*configs))
    assert (kafka.in_kafka, kafka.lost, kafka.doubled) == (total, 0, 0), kafka.examples
    tables = audit_tables(settings, env)
    assert (tables.in_kafka, tables.rows, tables.lost, tables.doubled, tables.beyond) == (
        total,
        total,
        0,
        0,
        0,
    ), tables.per_topic
    assert tables.quarantined == sum(s["malformed"] for s in summaries) > 0
    return {"records": total, "rows": tables.rows, "lost": tables.lost, "doubled": tables.doubled}


def _read_every_table_whole(settings: Settings) -> int:
    """Each table through the catalog: every snapshot's manifests and entries, and the current
    snapshot's rows (every data file read). A torn commit (a snapshot naming a missing manifest
    or data file) raises here. Returns the rows of the current snapshots."""
    from movesmart_dagster.tables.catalog import load_catalog, load_table

    catalog = load_catalog(settings)
    rows = 0
    for name in ALL_TABLES:
        table = load_table(settings, name, catalog)
        for snapshot in table.snapshots():
            for manifest in snapshot.manifests(table.io):
                manifest.fetch_manifest_entry(table.io)
        rows += table.scan().to_arrow().num_rows
    return rows


def _wait_for_data_put(log_file: Path, since: int, timeout: float) -> float:
    """Until the endpoint's request log, after byte `since`, shows a PUT of a table's data file:
    a batch is writing."""

    def writing() -> bool:
        with open(log_file, "rb") as fh:
            fh.seek(since)
            return any(
                b'"PUT /' in line and b"/data/" in line and b"/_checkpoints/" not in line for line in fh
            )

    return wait_until(writing, 180, "a batch writing data files to the endpoint", every=0.05)


def _endpoint_answers(endpoint: str, timeout: float) -> bool:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=BUCKET)
    except Exception:  # noqa: BLE001 - a timeout is the answer we look for
        return False
    return True


@pytest.mark.slow
def test_s3_endpoint_frozen_mid_batch_no_torn_table_every_offset_exactly_once(tmp_path, monkeypatch):
    for key, value in DUMMY_AWS.items():  # the endpoint (a child) and pyiceberg here take these
        monkeypatch.setenv(key, value)
    env = s3_stack_env(tmp_path / "home", "local", f"s3a://{BUCKET}/warehouse")
    settings = load_settings(env)
    s3 = LocalS3Endpoint(settings)
    broker = KafkaBroker(settings, heap="512m")
    s3.up()
    # the server process itself: `python -m moto.server` started by spawn_group, no reloader
    server_pid = s3.status().pid
    assert server_pid is not None and "moto.server" in Path(f"/proc/{server_pid}/cmdline").read_text()
    job = Job(env, tmp_path)
    summary_file = tmp_path / "summary.json"
    run = None
    frozen = False
    try:
        broker.up()
        backlog = simulate(env, *sim_flags(BACKLOG))
        job.launch()
        wait_for_first_batch(settings)
        run = start_simulator(env, summary_file, "--rate", "1200", *sim_flags(LIVE))
        wait_until(
            lambda: records_in_kafka(settings) >= BACKLOG["max_events"] + 2_000, 120, "live records flowing"
        )
        # mid-batch: the next data file a batch PUTs
        _wait_for_data_put(s3.log_file, s3.log_file.stat().st_size, 180)
        os.kill(server_pid, signal.SIGSTOP)
        frozen = True
        frozen_at = time.monotonic()
        assert job.current.poll() is None and run.poll() is None
        assert not _endpoint_answers(settings.s3_endpoint, 2.0), "the endpoint answered while frozen"
        # from here on no batch can commit (its metadata files live on the endpoint); one whose
        # requests were all served before the freeze has written its progress line by now
        committed = len(committed_batches(settings))
        first = job.current
        failed_after: list[float] = []  # seconds from the freeze to the first job's exit, if it exits

        def note_exit() -> None:
            if not failed_after and first.poll() is not None:
                failed_after.append(round(time.monotonic() - frozen_at, 1))

        while time.monotonic() - frozen_at < FREEZE_S:  # the fault's own span; the job may fail meanwhile
            note_exit()
            time.sleep(0.5)
        committed_while_frozen = len(committed_batches(settings)) - committed
        os.kill(server_pid, signal.SIGCONT)
        frozen = False
        thawed_at = time.monotonic()
        assert _endpoint_answers(settings.s3_endpoint, 30.0)
        # no batch can commit without the object store (its metadata files live there)
        assert committed_while_frozen == 0, committed_while_frozen

        def committed_again() -> bool:
            note_exit()
            job.relaunch_if_exited()  # it failed: relaunch it, as the supervisor does
            return len(committed_batches(settings)) > committed

        wait_until(committed_again, 300, "a batch committed after the thaw", every=0.5)
        recovery_s = time.monotonic() - thawed_at

        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:] + out[-2000:]
        summary = json.loads(summary_file.read_text())
        assert summary["total"] == LIVE["max_events"] and summary["failed_total"] == 0, summary
        job.stop()
        figures = _drain_and_audit(settings, env, [backlog, summary], BACKLOG, LIVE)
        figures.update(
            freeze_s=FREEZE_S,
            launches=len(job.procs),
            recovery_s=round(recovery_s, 1),
            first_exit=job.procs[0].returncode,
            failed_after_s=failed_after[0] if failed_after else None,
        )
        print(f"\nS3 endpoint frozen {FREEZE_S:.0f}s mid-batch: {figures}")
        if job.procs[0].returncode not in (None, 0):  # it failed: one line says why, no traceback
            said = [line for line in job.log(0).read_text().splitlines() if line.startswith("[movesmart")]
            assert said[-1].startswith("[movesmart stream] query failed: "), said
            assert not said[-1].endswith("Traceback (most recent call last):"), said[-1]
            print(f"the first job said: {said[-1]}")
    finally:
        if frozen:  # never leave the endpoint stopped: nothing could stop it cleanly
            os.kill(server_pid, signal.SIGCONT)
        job.kill_all()
        if run is not None and run.poll() is None:
            run.kill()
            run.wait(10)
        broker.down()
        s3.down()
        assert not pid_alive(server_pid)


def test_a_failed_query_is_told_in_one_line_with_its_innermost_error():
    from movesmart_dagster.streaming.failure import failure_summary

    settings = load_settings({"MOVESMART_WAREHOUSE": "file:///data/warehouse"})
    proxy = (
        "[FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function. Reason: "
        "An exception was raised by the Python Proxy. Return Message: Traceback (most recent call last):\n"
        '  File "job.py", line 548, in append\n'
        "    if self.already_committed(table):\n"
        "OSError: When reading information for key 'k' in bucket 'b': AWS Error NETWORK_CONNECTION\n"
    )
    assert failure_summary(proxy, settings, "cp").endswith(
        "Traceback (most recent call last): ... OSError: When reading information for key 'k' in bucket 'b': "
        "AWS Error NETWORK_CONNECTION"
    )
    chain = "Job aborted due to stage failure\nCaused by: java.io.IOException: Connection reset\n\tat x.y(Z)"
    assert failure_summary(chain, settings, "cp") == (
        "Job aborted due to stage failure ... java.io.IOException: Connection reset"
    )
    assert failure_summary("[STREAM_FAILED] plain", settings, "cp") == "[STREAM_FAILED] plain"
    full = (
        "Task failed\nCaused by: org.apache.hadoop.fs.FSError: java.io.IOException: No space left on device"
    )
    assert failure_summary(full, settings, "file:///data/cp") == (
        "no space left on device writing to the warehouse file:///data/warehouse (or the checkpoint "
        "file:///data/cp): free space there and start the job again; the failed batch is re-run, exactly once"
    )


# --- the warehouse disk full -------------------------------------------------------------


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")


def _fill(path: Path) -> int:
    """Write `path` until the file system has no byte left; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += fh.write(block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    break
    return written


@pytest.mark.slow
def test_warehouse_disk_full_fails_clearly_and_resumes_exactly_once(tmp_path):
    mount = tmp_path / "disk"
    _mount_tmpfs(mount, "64m")
    env = stack_env(tmp_path / "home", MOVESMART_WAREHOUSE=(mount / "warehouse").as_uri())
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    job = Job(env, tmp_path)
    filler = mount / "filler"
    try:
        broker.up()
        backlog = simulate(env, *sim_flags(BACKLOG))
        job.launch()
        wait_for_first_batch(settings)
        committed = len(committed_batches(settings))
        filled = _fill(filler)
        assert os.statvfs(mount).f_bavail == 0
        live = simulate(env, *sim_flags(LIVE_DISK))  # all at once: the next batch has rows to write
        full_at = time.monotonic()
        assert job.current.wait(300) == 1, job.log(0).read_text()[-3000:]
        failed_s = time.monotonic() - full_at
        assert len(committed_batches(settings)) == committed  # nothing committed on a full disk
        # what the user sees last: one line naming the cause and the place (Spark's own log
        # lines with their stack traces come before it)
        said = [line for line in job.log(0).read_text().splitlines() if line.startswith("[movesmart")]
        message = said[-1]
        assert message.startswith("[movesmart stream] query failed: no space left on device"), said
        assert (mount / "warehouse").as_uri() in message, message
        # the table files the failed batch left: none the catalog knows about, none read
        assert _read_every_table_whole(settings) == sum(b.input_rows for b in committed_batches(settings))

        filler.unlink()  # the space comes back; the supervisor's next launch resumes
        freed_at = time.monotonic()
        job.launch()
        wait_until(
            lambda: len(committed_batches(settings)) > committed, 300, "a batch after the space returned"
        )
        recovery_s = time.monotonic() - freed_at
        job.stop()
        figures = _drain_and_audit(settings, env, [backlog, live], BACKLOG, LIVE_DISK)
        figures.update(
            filler_mb=round(filled / 2**20, 1), failed_s=round(failed_s, 1), recovery_s=round(recovery_s, 1)
        )
        print(f"\nwarehouse disk full: {figures}; the job said: {message}")
    finally:
        job.kill_all()
        broker.down()
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        subprocess.run(["umount", str(mount)], check=False)
