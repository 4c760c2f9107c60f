"""Small, dependable process and port helpers shared by the local stack services.

Services run detached (their own session) so that they outlive the CLI call that
started them; a pid file under MOVESMART_HOME/run is the only record of them. A pid
file is trusted only if the process still runs *and* its command line names the
service, so a recycled pid never makes us kill a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """A local stack operation failed; the message is one line meant for the user."""


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    """True if we could bind host:port right now (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on loopback that is free now (for tests and side-by-side stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(size: int, attempts: int = 200) -> int:
    """The first of `size` consecutive loopback ports that are all free now (a local cluster's
    nodes take consecutive ports: see kafka_broker.py)."""
    for _ in range(attempts):
        base = free_port()
        if base + size <= 65535 and all(port_bindable(base + i) for i in range(size)):
            return base
    raise StackError(f"no {size} consecutive free ports found on loopback")


def wait_for_port(
    port: int, timeout: float, alive: Callable[[], bool] | None = None, host: str = "127.0.0.1"
) -> bool:
    """Wait until host:port accepts connections; stop early if `alive()` turns False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(port, host):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.2)
    return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as dead
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@dataclass(frozen=True)
class PidFile:
    """A pid file whose process must have `marker` in its command line to count as ours."""

    path: Path
    marker: str

    def read(self) -> int | None:
        """The pid of our running process, or None (stale files are removed)."""
        try:
            pid = int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.marker in _cmdline(pid):
            return pid
        self.path.unlink(missing_ok=True)
        return None

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# --- process groups: one way to start a child tree and to stop all of it ----------------------


def stopping_marker(home: Path) -> Path:
    return home / "run" / "stopping.pid"


def mark_stopping(home: Path) -> None:
    """Say that the platform started from `home` is stopping (`make dev` after Ctrl-C): while
    this process lives, the supervisor launches no new streaming run."""
    marker = stopping_marker(home)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))


def clear_stopping(home: Path) -> None:
    stopping_marker(home).unlink(missing_ok=True)


def platform_stopping(home: Path) -> bool:
    """True while the process that marked `home` as stopping is alive (a marker left by a killed
    `make dev` means nothing)."""
    try:
        pid = int(stopping_marker(home).read_text())
    except (OSError, ValueError):
        return False
    return pid_alive(pid)


def spawn_group(
    cmd: list[str],
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: int | None = subprocess.DEVNULL,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen:
    """Start `cmd` as the leader of a new session, so its whole tree (a Spark JVM, a run
    worker) shares one process group that `stop_group` can signal and sweep. Output is
    appended to `log_file`, or inherited when there is none."""
    if log_file is None:
        return subprocess.Popen(
            cmd, stdin=stdin, env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec_fn
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )


def group_members(pgid: int) -> list[int]:
    """Pids whose process group is `pgid`, zombies excluded: the survivors of a stop."""
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


def _signal(pid: int, sig: int, group: bool) -> None:
    """`sig` to the group `pid` leads (or to `pid` alone); gone processes are no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            try:
                os.killpg(pid, sig)
                return
            except ProcessLookupError:  # not a group leader (started elsewhere): the pid alone
                pass
        os.kill(pid, sig)


def stop_group(
    target: subprocess.Popen | int,
    sig: int = signal.SIGTERM,
    timeout: float = 30.0,
    leader_only: bool = False,
    sweep_timeout: float = 15.0,
) -> int | None:
    """Stop a process and everything in its group; returns a child's exit status (else None).

    `sig` goes to the group (or to the leader alone with `leader_only`, e.g. a job that must
    finish its batch before its JVM stops); after `timeout` the group is SIGKILLed. Whatever
    outlives the leader in its group (a JVM) then gets SIGTERM and, after `sweep_timeout`,
    SIGKILL. Safe to call twice and after the leader exited (it then only sweeps).
    """
    proc = target if isinstance(target, subprocess.Popen) else None
    pid = proc.pid if proc is not None else int(target)

    def leader_alive() -> bool:
        return proc.poll() is None if proc is not None else pid_alive(pid)

    def wait_leader(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while leader_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        return not leader_alive()

    if leader_alive():
        _signal(pid, sig, group=not leader_only)
        if not wait_leader(timeout):
            _signal(pid, signal.SIGKILL, group=True)
            wait_leader(30)
    if group_members(pid):
        _signal(pid, signal.SIGTERM, group=True)
        deadline = time.monotonic() + sweep_timeout
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_members(pid):
            _signal(pid, signal.SIGKILL, group=True)
    return proc.returncode if proc is not None else None
