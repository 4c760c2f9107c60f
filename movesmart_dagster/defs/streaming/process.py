"""The streaming job as a supervised child process: start, watch, stop cleanly, never orphan a JVM.

Why not Dagster Pipes' subprocess client: it blocks until the child exits, and Pipes lets
a session report one materialization per asset — a streaming job commits a batch every few
seconds for hours. Here the Dagster op owns the child: it tails the progress log while the
child runs (one materialization per table per committed batch), and on termination it
forwards SIGTERM (the job stops after the current batch), waits, then SIGKILLs the whole
process group, which holds the Spark driver's JVM (pyspark starts it as a descendant).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

from movesmart_dagster.settings import REPO_ROOT
from movesmart_dagster.stack.processes import spawn_group, stop_group


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
        # its own group: SIGINT to the run worker does not reach it unasked
        self.proc = spawn_group(
            self.cmd, self.log_file, env=self.env, cwd=self.cwd, preexec_fn=_die_with_parent
        )
        return self

    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 90.0) -> int | None:
        """SIGTERM the job alone (it finishes its batch, then stops its JVM), wait up to
        `timeout`, then SIGKILL the group; sweep what is left; returns the exit code.

        Safe to call twice and after the child exited (it then only sweeps the group).
        """
        if self.proc is None:
            return None
        return stop_group(self.proc, signal.SIGTERM, timeout, leader_only=True)

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return ""
        with open(self.log_file, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
