"""`make dev`: the local stack, a gentle simulator and `dagster dev`; Ctrl-C stops them all.

Runs in the foreground so a person sees everything start, and cleans up what it started
(never a broker it did not start) on Ctrl-C or SIGTERM:
- the Kafka broker (`movesmart stack up`, unless one already runs for this MOVESMART_HOME);
- once per MOVESMART_HOME, a simulated past day (`seed_day`: the day before yesterday, from
  03:00 UTC on) sent before the live stream, so that within minutes a newcomer sees a whole day
  go through: its table partitions, their per-day checks and its computed analytics, started by
  the automation with no click. Never the day the analytics' freshness checks expect (yesterday
  from 03:00 UTC, the day before until then): seeded, it would alert "late" until the automation
  computed it a minute later, while a day without data is empty, not late (no alert);
- the simulator in real time at a gentle rate (`movesmart simulate --realtime --rate 20`),
  restarted with the next seed whenever its fleet has arrived, so data keeps flowing;
- `dagster dev` on http://127.0.0.1:3000 with DAGSTER_HOME=$MOVESMART_HOME/dagster. Its
  daemon runs the supervisor sensor (on by default), which launches the streaming run;
  the first table materializations follow within a minute.
Every child runs in its own process group and is stopped group-wide (SIGINT/SIGTERM,
then SIGKILL), so no JVM outlives `make dev`.

Stopping is a deliberate act, so it must not read as a failure: first every run in progress
is terminated the way the UI's *Terminate* does it, tagged as a shutdown (the streaming op
stops Spark after its batch and ends its run as a SUCCESS, quietly; other runs end CANCELED —
never FAILURE, which became a false "run failed" alert on the next start), then `dagster dev`
alone gets SIGINT and shuts its services down through its own shutdown pipes (a SIGINT to its
whole group made every helper process print a KeyboardInterrupt traceback, and killed the run
worker mid-stop, orphaning its Spark job).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import clear_stopping, mark_stopping, spawn_group, stop_group

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# Dagster keeps a sensor's SUCCESS and FAILURE ticks forever by default (SKIPPED ones 7 days):
# with the supervisor, the alerts and the automation ticking every 30-60 s, the instance's
# schedule storage would grow without bound (the soak, bench/soak.py, measured it)
TICK_RETENTION = (
    "retention:  # days a sensor's or schedule's ticks are kept (-1: forever)\n"
    "  sensor:\n    purge_after_days:\n      skipped: 1\n      success: 7\n      failure: 30\n      started: 7\n"
    "  schedule:\n    purge_after_days:\n      skipped: 7\n      success: 30\n      failure: 30\n      started: 30\n"
)


# one table-maintenance run at a time: the maintenance assets share a pool (MAINTENANCE_POOL), and
# two rewrites of one day at once fail the later commit (a soak met it: the hourly schedule's
# open-day compaction beside one started by hand). Runs wait in the queue for the pool.
POOL_LIMITS = (
    "concurrency:  # a pool's runs at once (the maintenance assets: one pool)\n"
    "  pools:\n    default_limit: 1\n    granularity: run\n"
)


def ensure_instance_yaml(dagster_home: Path) -> None:
    """Instance config: run monitoring catches a run worker that died without reporting; a run's
    console (this terminal) shows INFO and up, not every event at DEBUG (the UI keeps them all);
    ticks are purged after days (TICK_RETENTION), so the instance's storage stays bounded; a pool
    runs one run at a time (POOL_LIMITS)."""
    cfg = dagster_home / "dagster.yaml"
    header = "# written by `make dev` (movesmart_dagster/dev.py); edit freely\n"
    python_logs = "python_logs:\n  python_log_level: INFO  # DEBUG: every run event in the terminal too\n"
    if not cfg.exists():
        cfg.write_text(
            header
            + "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
            + "telemetry:\n  enabled: false\n"
            + python_logs
            + TICK_RETENTION
            + POOL_LIMITS
        )
    text = cfg.read_text()
    if not text.startswith(header):
        return  # the user's own file
    # written by an earlier version of this file: add what it lacked
    if "python_logs:" not in text:
        text += python_logs
    if "retention:" not in text:
        text += TICK_RETENTION
    if "concurrency:" not in text:
        text += POOL_LIMITS
    if text != cfg.read_text():
        cfg.write_text(text)
    import dagster as dg

    from movesmart_dagster.instance_pools import register_pools

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        register_pools(instance)


def _sigint_default() -> None:
    """In a child before exec: a shell that started us in the background ignores SIGINT, and an
    ignored signal stays ignored across exec — then `dagster dev` could not be stopped with it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    # stdin inherited: `dagster dev` is the terminal's foreground program in all but group
    return spawn_group(cmd, log, env=env, cwd=REPO, stdin=None, preexec_fn=_sigint_default)


# how long a short run (checks, catalog, analytics) may take to finish on its own at shutdown
SHORT_RUN_GRACE_SECONDS = 60.0


def _cancel_runs(dagster_home: Path, timeout: float, dagster: subprocess.Popen | None = None) -> list[str]:
    """Stop every run in progress, and wait until each has ended.

    The streaming run is terminated at once as *Terminate* in the UI does (through the
    instance's run coordinator: its op then stops Spark after the current batch). Short runs
    (checks, catalog, analytics) are left to finish for up to `SHORT_RUN_GRACE_SECONDS`:
    interrupted, each would end CANCELED with an interrupt stack trace in the terminal. Those
    still running after it are terminated the same way. With `dagster` gone (no run worker
    can answer any more), what is left is marked CANCELED. Returns one line per run that was
    in progress.
    """
    import dagster as dg

    from movesmart_dagster.defs.keys import STOP_REASON_SHUTDOWN, STOP_REASON_TAG, STREAMING_JOB_NAME

    in_progress = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    asked: dict[str, str] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        deadline = time.monotonic() + timeout
        grace_ends = time.monotonic() + min(SHORT_RUN_GRACE_SECONDS, timeout / 2)
        while True:
            runs = instance.get_runs(filters=dg.RunsFilter(statuses=in_progress))
            if not runs:
                break
            alive = dagster is not None and dagster.poll() is None
            for run in runs:
                if run.run_id in asked and alive:
                    continue
                if alive and run.job_name != STREAMING_JOB_NAME and time.monotonic() < grace_ends:
                    continue  # a short run: let it finish
                delivered = False
                if alive:
                    try:
                        # the streaming op reads this tag: it ran until the platform stopped, a success
                        instance.add_run_tags(run.run_id, {STOP_REASON_TAG: STOP_REASON_SHUTDOWN})
                        delivered = instance.run_coordinator.cancel_run(run.run_id)
                    except Exception as err:  # noqa: BLE001 - an unreachable code server: no worker to ask
                        print(f"could not terminate run {run.run_id[:8]}: {err}", flush=True)
                current = instance.get_run_by_id(run.run_id)
                if not delivered and current is not None and not current.is_finished:
                    # no run worker took the request (none left, or dagster dev is gone)
                    instance.report_run_canceled(current, message="make dev stopped before this run ended")
                asked.setdefault(run.run_id, run.job_name)
            if time.monotonic() > deadline:
                print(
                    f"runs still in progress after {timeout:.0f}s: {[r.run_id[:8] for r in runs]}", flush=True
                )
                break
            time.sleep(0.5)
        lines = []
        for run_id, job in asked.items():
            run = instance.get_run_by_id(run_id)
            lines.append(f"{job} {run_id[:8]} {run.status.value if run else 'gone'}")
    return lines


SEEDED_MARKER = "seeded-past-day"
# the past day's fleet: 5 vehicles, a reading each 30 simulated seconds from 06:00, ~2.5 hours
SEED_EVENTS = 6000


def seed_past_day(
    env: dict[str, str], day: str, seed: int = 1, events: int = SEED_EVENTS, start: str = "06:00"
) -> int:
    """Sends one simulated day (`day`, from `start` UTC) to Kafka as fast as the broker takes it;
    returns the simulator's exit code."""
    cmd = [str(BIN / "movesmart"), "simulate", "--start-time", f"{day}T{start}:00+00:00", "--tick", "30"]
    cmd += ["--vehicles", "5", "--seed", str(seed), "--max-events", str(events), "--bad-ratio", "0.01"]
    cmd += ["--no-progress"]
    return subprocess.run(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    ).returncode


def seed_day(now: datetime) -> date:
    """The past day `make dev` seeds: the day before the one the freshness checks expect."""
    from movesmart_dagster.defs.partitions import expected_analytics_day

    return expected_analytics_day(now) - timedelta(days=1)


def _seed_once(home: Path, env: dict[str, str]) -> None:
    marker = home / SEEDED_MARKER
    if marker.exists():
        return
    day = seed_day(datetime.now(UTC)).isoformat()
    started = time.monotonic()
    if seed_past_day(env, day) == 0:
        marker.write_text(day + "\n")
        print(
            f"seeded    {day}: {SEED_EVENTS} simulated records in {time.monotonic() - started:.0f}s "
            "(its analytics compute by themselves once its checks pass)",
            flush=True,
        )
    else:
        print(f"seeded    {day}: the simulator failed; see `movesmart simulate --help`", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOVESMART_DAGSTER_PORT", "3000")))
    parser.add_argument("--rate", type=float, default=20.0, help="simulator events/s")
    parser.add_argument("--vehicles", type=int, default=5)
    parser.add_argument("--no-simulator", action="store_true")
    parser.add_argument("--no-seed", action="store_true", help="do not send the simulated past day")
    args = parser.parse_args(argv)
    # Ctrl-C/SIGINT must stop us even when a non-interactive shell started us with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)

    settings = load_settings()
    clear_stopping(settings.home_dir)  # left by a `make dev` that was killed while stopping
    broker = KafkaBroker(settings)
    started_broker = not broker.status().running
    status = broker.up()
    print(f"kafka     running pid={status.pid} bootstrap={status.bootstrap}", flush=True)

    dagster_home = settings.home_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    ensure_instance_yaml(dagster_home)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MOVESMART_HOME": str(settings.home_dir)}
    # `dagster dev` warns at each start that `dg dev` supersedes it; `make dev` keeps
    # `dagster dev -w workspace.yaml` (dg serves `dg check defs` / `dg list defs` here)
    superseded = "ignore:Function `dev_command` is superseded"
    dev_env = {**env, "PYTHONWARNINGS": ",".join(filter(None, (env.get("PYTHONWARNINGS"), superseded)))}
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
            # its services' INFO lines (every sensor tick) only when MOVESMART_LOG_LEVEL asks
            "--log-level",
            settings.log_level.lower(),
        ],
        dev_env,
    )
    print(f"dagster   http://localhost:{args.port}  (DAGSTER_HOME={dagster_home})", flush=True)

    if not (args.no_simulator or args.no_seed):
        _seed_once(settings.home_dir, env)
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
        mark_stopping(settings.home_dir)  # the supervisor replaces no run stopped from here on
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        if sim is not None:
            stop_group(sim, signal.SIGTERM, 30)
        # runs first, while their code server can still pass the request on: the streaming op
        # stops Spark after its current batch (the broker is still up) and the run ends CANCELED
        for line in _cancel_runs(dagster_home, 150, dagster):
            print(f"run       {line}", flush=True)
        # SIGINT to dagster dev alone: it stops the daemon, the webserver and the code server
        stop_group(dagster, signal.SIGINT, 120, leader_only=True)
        # a run launched in the last moment has lost its worker with dagster dev: not a failure
        _cancel_runs(dagster_home, 5)
        if started_broker:
            broker.down()
        clear_stopping(settings.home_dir)
        print("stopped" if stopping else "stopped (after an error)", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
