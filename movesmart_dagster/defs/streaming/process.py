"""The streaming job as a supervised child process: start, watch, stop cleanly, never orphan a JVM.

Why not Dagster Pipes' subprocess client: it blocks until the child exits, and Pipes lets
a session report one materialization per asset — a streaming job commits a batch every few
seconds for hours. Here the Dagster op owns the child: it tails the progress log while the
child runs (one materialization per table per committed batch), and on termination it
forwards SIGTERM (the job stops after the current batch), waits, then SIGKILLs the whole
process group, which holds the Spark driver's JVM (pyspark starts it as a descendant).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from movesmart_dagster.settings import REPO_ROOT


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_members(pgid: int) -> list[int]:
    """Pids whose process group is `pgid` (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the run worker dies (Linux), so no job outlives its run."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SupervisedProcess:
    """A child in its own process group with output appended to a log file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log_file: Path, cwd: Path = REPO_ROOT) -> None:
        self.cmd = cmd
        self.env = env
        self.log_file = log_file
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> SupervisedProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own group: SIGINT to the run worker does not reach it unasked
                preexec_fn=_die_with_parent,
            )
        return self

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 90.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the group; returns the exit code.

        Safe to call twice and after the child exited (it then only sweeps the group).
        """
        if self.proc is None:
            return None
        pgid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # the leader is gone: anything left in its group (a JVM) gets TERM, then KILL
        deadline = time.monotonic() + 15
        if _group_alive(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGTERM)
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_members(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return ""
        with open(self.log_file, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
