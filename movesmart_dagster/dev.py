"""`make dev`: the local stack, a gentle simulator and `dagster dev`; Ctrl-C stops them all.

Runs in the foreground so a person sees everything start, and cleans up what it started
(never a broker it did not start) on Ctrl-C or SIGTERM:
- the Kafka broker (`movesmart stack up`, unless one already runs for this MOVESMART_HOME);
- the simulator in real time at a gentle rate (`movesmart simulate --realtime --rate 20`),
  restarted with the next seed whenever its fleet has arrived, so data keeps flowing;
- `dagster dev` on http://127.0.0.1:3000 with DAGSTER_HOME=$MOVESMART_HOME/dagster. Its
  daemon runs the supervisor sensor (on by default), which launches the streaming run;
  the first table materializations follow within a minute.
Every child runs in its own process group and is stopped group-wide (SIGINT/SIGTERM,
then SIGKILL), so no JVM outlives `make dev`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _dagster_yaml(dagster_home: Path) -> None:
    """Instance config: run monitoring catches a run worker that died without reporting."""
    cfg = dagster_home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(
            "# written by `make dev` (movesmart_dagster/dev.py); edit freely\n"
            "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
            "telemetry:\n  enabled: false\n"
        )


def _sigint_default() -> None:
    """In a child before exec: a shell that started us in the background ignores SIGINT, and an
    ignored signal stays ignored across exec — then `dagster dev` could not be stopped with it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else None  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
        preexec_fn=_sigint_default,
    )


def _stop(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # the group may outlive its leader (a run worker, a Spark JVM): sweep it
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOVESMART_DAGSTER_PORT", "3000")))
    parser.add_argument("--rate", type=float, default=20.0, help="simulator events/s")
    parser.add_argument("--vehicles", type=int, default=5)
    parser.add_argument("--no-simulator", action="store_true")
    args = parser.parse_args(argv)
    # Ctrl-C/SIGINT must stop us even when a non-interactive shell started us with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    settings = load_settings()
    broker = KafkaBroker(settings)
    started_broker = not broker.status().running
    status = broker.up()
    print(f"kafka     running pid={status.pid} bootstrap={status.bootstrap}", flush=True)

    dagster_home = settings.home_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    _dagster_yaml(dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MOVESMART_HOME": str(settings.home_dir)}
    logs = settings.home_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    dagster = _start(
        [
            str(BIN / "dagster"),
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(args.port),
        ],
        env,
    )
    print(f"dagster   http://localhost:{args.port}  (DAGSTER_HOME={dagster_home})", flush=True)

    seed = 1
    sim_log = logs / "simulator.log"

    def simulator() -> subprocess.Popen:
        cmd = [str(BIN / "movesmart"), "simulate", "--realtime", "--rate", str(args.rate)]
        cmd += ["--vehicles", str(args.vehicles), "--seed", str(seed), "--bad-ratio", "0.01", "--no-progress"]
        return _start(cmd, env, sim_log)

    sim = None if args.no_simulator else simulator()
    if sim:
        print(f"simulator --realtime --rate {args.rate:g} (log: {sim_log})", flush=True)
    print("Ctrl-C stops everything", flush=True)

    stopping = False

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    code = 0
    try:
        while True:
            if dagster.poll() is not None:
                print(f"dagster dev exited ({dagster.returncode})", flush=True)
                code = dagster.returncode or 1
                break
            if sim is not None and sim.poll() is not None:
                # the fleet arrived (or the broker hiccuped): drive the next one
                seed += 1
                sim = simulator()
            time.sleep(1)
    except KeyboardInterrupt:
        stopping = True
    finally:
        print("stopping ...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        if sim is not None:
            _stop(sim, signal.SIGTERM, 30)
        # SIGINT: dagster dev stops the daemon, the webserver and the code server; a run in progress
        # is interrupted, so the streaming job gets SIGTERM from its op and stops Spark cleanly
        _stop(dagster, signal.SIGINT, 120)
        if started_broker:
            broker.down()
        print("stopped" if stopping else "stopped (after an error)", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
