"""The streaming job's process supervision: a clean stop, a swept process group, death with the parent.

The child here is a small Python program that behaves like the Spark driver in the ways
that matter: it starts a long-lived grandchild in its own process group (as pyspark starts
the JVM) and stops on SIGTERM without taking the grandchild along. Real processes, real
signals. A stop (SIGTERM, then SIGKILL after the timeout) leaves no descendant; when the
supervising process itself is SIGKILLed, the driver dies with it — its grandchild then
outlives it (nobody is left to sweep the group), so that test asserts the driver's death
and kills the grandchild itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from movesmart_dagster.defs.streaming.process import SupervisedProcess
from movesmart_dagster.stack.processes import group_members

DRIVER = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    grandchild = subprocess.Popen(["sleep", "600"])  # stands for the JVM: same process group
    print("grandchild", grandchild.pid, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exits, leaving the grandchild behind
    while True:
        time.sleep(0.1)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _grandchild(log: Path) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if log.exists() and "grandchild" in log.read_text():
            return int(log.read_text().split()[1])
        time.sleep(0.1)
    raise AssertionError(log.read_text() if log.exists() else "no output")


def test_stop_terminates_the_driver_and_sweeps_its_group(tmp_path):
    proc = SupervisedProcess(
        [sys.executable, "-c", DRIVER], dict(os.environ), tmp_path / "driver.log"
    ).start()
    grandchild = _grandchild(tmp_path / "driver.log")
    assert _alive(grandchild) and grandchild in group_members(proc.pid)
    started = time.monotonic()
    assert proc.stop(timeout=10) == 0  # exited on SIGTERM, status 0
    assert time.monotonic() - started < 20
    assert not _alive(grandchild), "the grandchild (the JVM's stand-in) outlived the stop"
    assert not group_members(proc.pid)
    assert proc.stop(timeout=1) == 0  # idempotent


def test_a_driver_ignoring_sigterm_is_killed_after_the_timeout(tmp_path):
    stubborn = DRIVER.replace("lambda *_: sys.exit(0)", "signal.SIG_IGN")
    proc = SupervisedProcess([sys.executable, "-c", stubborn], dict(os.environ), tmp_path / "d.log").start()
    grandchild = _grandchild(tmp_path / "d.log")
    started = time.monotonic()
    assert proc.stop(timeout=2) == -signal.SIGKILL
    assert 2 <= time.monotonic() - started < 20
    assert not _alive(grandchild)


def test_the_driver_dies_with_its_run_worker(tmp_path):
    """SIGKILL the process that supervises (as when a run worker is killed): the driver gets SIGTERM."""
    supervisor = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from movesmart_dagster.defs.streaming.process import SupervisedProcess
        p = SupervisedProcess([sys.executable, "-c", {DRIVER!r}], dict(os.environ), Path({str(tmp_path / "w.log")!r})).start()
        print(p.pid, flush=True)
        time.sleep(600)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", supervisor], stdout=subprocess.PIPE, text=True)
    driver = int(worker.stdout.readline())
    grandchild = _grandchild(tmp_path / "w.log")
    worker.kill()
    worker.wait(10)
    deadline = time.monotonic() + 15
    while _alive(driver) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(driver), "the driver outlived its supervising process"
    os.kill(
        grandchild, signal.SIGKILL
    )  # the driver's own exit leaves its child to the sweep we no longer run
