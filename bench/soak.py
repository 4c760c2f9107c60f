"""Soak: the whole platform as `make dev` runs it, for 30 minutes (or longer), sampled each minute.

Starts `python -m movesmart_dagster.dev` (the Kafka broker, `dagster dev` with the supervisor
sensor that launches the streaming run, the automation, the alerts and the schedules, and the
simulator in real time) on a temporary MOVESMART_HOME with free loopback ports, at --rate
events/s (default 2,000). Maintenance runs every --maintenance-minutes through Dagster's
GraphQL API, as its schedules would submit them (their crons are hourly and daily): the snapshot
expiry and orphan removal of every table (`table_snapshots_job`), the compaction of the live day
(`open_day_compaction_job`) and of the seeded past day (`table_maintenance_job`).

Each --sample-seconds it records, from /proc (psutil is not a dependency):
- the resident memory of each role: the Spark driver (the job's Python process and its JVM),
  the broker JVM, `dagster dev`, its webserver, daemon and code server(s), the run workers,
  the simulator, `make dev` itself, and any other Spark JVM (maintenance runs);
- the Dagster instance's storage (the SQLite event log and run storage) and its compute logs;
- the streaming progress log (and its rotated `.1`), every other log and state file under the
  home (the checkpoint, Kafka's data, the job's and services' logs);
- the warehouse's file count (data and metadata files) and bytes;
- Kafka's end offsets against the offsets the job committed (the lag), and the load average.

At the end: every run's status (a failed run fails the goal), the memory growth of each
long-lived role from the first sample after --warmup-minutes to the last (goal <= 10%), the
files that kept growing, and a table; writes bench/results/soak.{json,md,png}. Not in CI.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 2000] [--sample-seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import report  # noqa: E402

from movesmart_dagster.defs.resources import lag_per_topic  # noqa: E402
from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.stack.processes import free_port, free_port_block, spawn_group, stop_group  # noqa: E402

RESULTS = REPO / "bench" / "results"
TOPICS = ("vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data")
# the roles whose memory must stay flat (the goal); the others come and go with runs
LONG_LIVED = (
    "spark_driver_jvm",
    "spark_driver_python",
    "kafka_broker",
    "dagster_webserver",
    "dagster_daemon",
    "dagster_code_server",
    "dagster_dev",
    "streaming_run_worker",
    "make_dev",
)
GROWTH_GOAL = 0.10


def log(msg: str) -> None:
    print(f"[soak {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def machine() -> dict[str, Any]:
    """The bench's machine record (`report.machine`) and the commit the soak starts at."""
    return {**report.machine(), "commit": report.git_commit()}


# --- processes ------------------------------------------------------------------------------


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def our_processes(home: Path) -> dict[int, dict[str, Any]]:
    """Every process that carries this soak's MOVESMART_HOME (environment or command line)."""
    marker_env = b"\0MOVESMART_HOME=" + str(home).encode() + b"\0"
    marker_cmd = str(home).encode()
    out: dict[int, dict[str, Any]] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        cmdline = _read(f"/proc/{pid}/cmdline")
        if not cmdline:
            continue
        env = b"\0" + _read(f"/proc/{pid}/environ") + b"\0"
        if marker_env not in env and marker_cmd not in cmdline:
            continue
        stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
        fields = stat[stat.rfind(")") + 2 :].split()
        rss = 0
        for line in _read(f"/proc/{pid}/status").decode(errors="replace").splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        out[pid] = {
            "ppid": int(fields[1]) if len(fields) > 1 else 0,
            "pgid": int(fields[2]) if len(fields) > 2 else 0,
            "cmd": [a.decode(errors="replace") for a in cmdline.rstrip(b"\0").split(b"\0")],
            "rss": rss,
        }
    return out


def _ancestors(pid: int, procs: dict[int, dict[str, Any]]) -> list[int]:
    out = []
    while pid in procs and procs[pid]["ppid"] not in out and len(out) < 50:
        pid = procs[pid]["ppid"]
        out.append(pid)
    return out


def classify(procs: dict[int, dict[str, Any]]) -> dict[int, str]:
    """pid -> role."""
    text = {pid: " ".join(p["cmd"]) for pid, p in procs.items()}
    drivers = {
        pid
        for pid, t in text.items()
        if "movesmart_dagster.streaming.job" in t and p_exe(procs[pid]) != "java"
    }
    above_drivers = {a for d in drivers for a in _ancestors(d, procs)}
    run_workers = {a for a in above_drivers if "spawn_main" in text.get(a, "")}
    roles: dict[int, str] = {}
    for pid, t in text.items():
        if pid == os.getpid():
            continue  # the soak itself
        exe = p_exe(procs[pid])
        up = _ancestors(pid, procs)
        if exe == "java":
            if "kafka.Kafka" in t:
                roles[pid] = "kafka_broker"
            elif drivers & set(up):
                roles[pid] = "spark_driver_jvm"
            else:
                roles[pid] = "spark_other_jvm"  # a maintenance or analytics run's Spark
        elif pid in drivers:
            roles[pid] = "spark_driver_python"
        elif "movesmart_dagster.dev" in t:
            roles[pid] = "make_dev"
        elif any(
            Path(a).name == "dagster" and b == "dev"
            for a, b in zip(procs[pid]["cmd"], procs[pid]["cmd"][1:], strict=False)
        ):
            roles[pid] = "dagster_dev"
        elif "dagster-webserver" in t or "dagster_webserver" in t:
            roles[pid] = "dagster_webserver"
        elif "dagster-daemon" in t or "dagster._daemon" in t:
            roles[pid] = "dagster_daemon"
        elif "code-server" in t or "api grpc" in t:
            roles[pid] = "dagster_code_server"
        elif pid in above_drivers:
            roles[pid] = "streaming_run_worker"  # the run that owns the streaming job
        elif "spawn_main" in t and procs[pid]["ppid"] in run_workers:
            roles[pid] = "streaming_metadata_reader"  # its child, replaced every 100 reads
        elif "execute_run" in t or "spawn_main" in t:
            roles[pid] = "other_run_workers"  # runs (checks, analytics, maintenance) and their helpers
        elif "simulate" in t:
            roles[pid] = "simulator"
        elif "watch_orphans" in t or exe == "tail":
            roles[pid] = "compute_log_tailers"
        else:
            roles[pid] = "other"
    return roles


def p_exe(p: dict[str, Any]) -> str:
    return Path(p["cmd"][0]).name if p["cmd"] else ""


# --- files ----------------------------------------------------------------------------------


def tree(root: Path) -> tuple[int, int]:
    """(files, bytes) under root."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
            except OSError:
                pass
    return files, size


def file_sizes(home: Path, skip: tuple[Path, ...]) -> dict[str, int]:
    """Size of every file under home outside `skip` (the logs and state files)."""
    out: dict[str, int] = {}
    for dirpath, dirs, names in os.walk(home):
        dirs[:] = [d for d in dirs if Path(dirpath, d) not in skip]
        for name in names:
            path = Path(dirpath, name)
            with contextlib.suppress(OSError):
                out[str(path.relative_to(home))] = path.lstat().st_size
    return out


def warehouse_counts(warehouse: Path) -> dict[str, int]:
    data = meta = size = 0
    for dirpath, _dirs, names in os.walk(warehouse):
        kind = "metadata" if "/metadata" in dirpath else "data"
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            if kind == "metadata":
                meta += 1
            else:
                data += 1
    return {"files": data + meta, "data_files": data, "metadata_files": meta, "bytes": size}


# --- Kafka and runs -------------------------------------------------------------------------


def kafka_offsets(settings: Any) -> dict[str, dict[int, int]]:
    """End offsets per topic and partition (the audit's reading of them)."""
    from movesmart_dagster.stack.audit import end_offsets

    out: dict[str, dict[int, int]] = {t: {} for t in TOPICS}
    for (topic, partition), end in end_offsets(settings, timeout=10).items():
        out[topic][partition] = end
    return out


def run_statuses(dagster_home: Path) -> dict[str, Any]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs(limit=100_000)
        by_status: dict[str, int] = {}
        failed = []
        for r in runs:
            by_status[r.status.value] = by_status.get(r.status.value, 0) + 1
            if r.status == dg.DagsterRunStatus.FAILURE:
                failed.append({"run_id": r.run_id, "job": r.job_name, "tags": dict(r.tags)})
        by_job: dict[str, dict[str, int]] = {}
        for r in runs:
            by_job.setdefault(r.job_name, {}).setdefault(r.status.value, 0)
            by_job[r.job_name][r.status.value] += 1
    return {"by_status": by_status, "by_job": by_job, "failed": failed, "total": len(runs)}


def submit(port: int, job: str, partition: str | None = None) -> str:
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
    tags = {"movesmart/soak": "maintenance"}
    if partition:
        tags["dagster/partition"] = partition
    return client.submit_job_execution(
        job, repository_location_name="movesmart", repository_name="__repository__", tags=tags
    )


# --- the soak -------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args, self.home = args, home
        self.port = free_port()
        kafka_port = free_port_block(2)
        self.env = {
            **os.environ,
            "MOVESMART_HOME": str(home),
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "MOVESMART_KAFKA_CONTROLLER_PORT": str(kafka_port + 1),
            # the caller's PYTHONPATH stays after the repo (e.g. a diagnostic sitecustomize)
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        if args.progress_log_max_bytes:
            self.env["MOVESMART_PROGRESS_LOG_MAX_BYTES"] = str(args.progress_log_max_bytes)
        self.settings = load_settings(self.env)
        self.dagster_home = home / "dagster"
        self.warehouse = Path(self.settings.warehouse.removeprefix("file://"))
        self.dev: subprocess.Popen | None = None
        self.samples: list[dict[str, Any]] = []
        self.maintenance: list[dict[str, Any]] = []
        self.file_sizes: list[tuple[float, dict[str, int]]] = []
        self.started = 0.0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "movesmart_dagster.dev", "--port", str(self.port)]
        cmd += ["--rate", str(self.args.rate), "--vehicles", str(self.args.vehicles)]
        self.dev = spawn_group(cmd, self.home / "soak-dev.log", env=self.env, cwd=REPO)
        self.started = time.monotonic()
        log(
            f"make dev pid={self.dev.pid} home={self.home} dagster=:{self.port} kafka={self.env['KAFKA_BOOTSTRAP_SERVERS']}"
        )

    def sample(self) -> dict[str, Any]:
        procs = our_processes(self.home)
        roles = classify(procs)
        rss: dict[str, int] = {}
        count: dict[str, int] = {}
        for pid, role in roles.items():
            rss[role] = rss.get(role, 0) + procs[pid]["rss"]
            count[role] = count.get(role, 0) + 1
        # the SQLite event logs and run storage (history/), the schedules' and sensors' ticks
        # (schedules/), and the runs' compute logs (storage/)
        storage = self.dagster_home / "storage"
        db_bytes = sum(tree(self.dagster_home / d)[1] for d in ("history", "schedules"))
        compute_files, compute_bytes = tree(storage)
        storage_bytes = db_bytes + compute_bytes
        storage_files = tree(self.dagster_home)[0]
        plog = self.settings.progress_log
        rotated = plog.with_name(plog.name + ".1")
        ckpt_files, ckpt_bytes = tree(self.home / "checkpoints")
        kafka_files, kafka_bytes = tree(self.home / "kafka")
        logs = {
            "streaming_logs": tree(self.home / "streaming" / "logs")[1],
            "home_logs": tree(self.home / "logs")[1],
        }
        skip = (self.warehouse, self.home / "kafka", self.home / "checkpoints", storage)
        sizes = file_sizes(self.home, skip)
        self.file_sizes.append((time.monotonic() - self.started, sizes))
        try:
            ends = kafka_offsets(self.settings)
        except Exception as exc:  # noqa: BLE001 - a sample must not end the soak
            ends = {}
            log(f"end offsets: {exc}")
        from movesmart_dagster.defs.streaming.progress_state import ProgressState

        state = ProgressState.load(plog)
        committed = state.committed_offsets()
        produced = sum(sum(p.values()) for p in ends.values())
        lag = sum(lag_per_topic(ends, committed).values())
        try:
            runs = run_statuses(self.dagster_home)
        except Exception as exc:  # noqa: BLE001
            runs = {"by_status": {}, "error": str(exc)}
        s = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "minute": round((time.monotonic() - self.started) / 60, 2),
            "load": [round(x, 2) for x in os.getloadavg()],
            "rss": rss,
            "processes": count,
            "dagster_storage_bytes": storage_bytes,
            "dagster_storage_files": storage_files,
            "dagster_db_bytes": db_bytes,
            "dagster_compute_log_bytes": compute_bytes,
            "dagster_compute_log_files": compute_files,
            "progress_log_bytes": plog.stat().st_size if plog.exists() else 0,
            "progress_log_rotated_bytes": rotated.stat().st_size if rotated.exists() else 0,
            "checkpoint_files": ckpt_files,
            "checkpoint_bytes": ckpt_bytes,
            "kafka_data_files": kafka_files,
            "kafka_data_bytes": kafka_bytes,
            **logs,
            "other_files_bytes": sum(sizes.values()),
            "warehouse": warehouse_counts(self.warehouse),
            "produced": produced,
            "committed": sum(sum(p.values()) for p in committed.values()),
            "lag": lag if ends else None,
            "last_batch_id": state.last_batch_id,
            "runs": runs.get("by_status", {}),
        }
        self.samples.append(s)
        return s

    def run_maintenance(self) -> None:
        day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()  # make dev's seeded past day
        for job, part in (
            ("open_day_compaction_job", None),
            ("table_snapshots_job", None),
            ("table_maintenance_job", day),
        ):
            try:
                run_id = submit(self.port, job, part)
                self.maintenance.append(
                    {
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "job": job,
                        "partition": part,
                        "run_id": run_id,
                    }
                )
                log(f"submitted {job}{f' [{part}]' if part else ''}: {run_id[:8]}")
            except Exception as exc:  # noqa: BLE001 - recorded, the soak goes on
                self.maintenance.append(
                    {
                        "at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "job": job,
                        "partition": part,
                        "error": str(exc),
                    }
                )
                log(f"could not submit {job}: {exc}")

    def stop(self) -> None:
        if self.dev is not None and self.dev.poll() is None:
            log("stopping make dev (SIGINT, as Ctrl-C) ...")
            stop_group(self.dev, signal.SIGINT, 360, leader_only=True)
        # whatever of ours outlived it (its children run in their own sessions): by process group
        leftovers = our_processes(self.home)
        groups = {p["pgid"] for p in leftovers.values() if p["pgid"] > 1 and p["pgid"] != os.getpgrp()}
        for pgid in groups:
            log(f"leftover process group {pgid}: SIGKILL")
            stop_group(pgid, signal.SIGKILL, 10)
        self.leftovers = sorted({" ".join(p["cmd"])[:120] for p in leftovers.values()})


def summarize(soak: Soak, runs_before_stop: dict[str, Any], runs_after: dict[str, Any]) -> dict[str, Any]:
    a = soak.args
    samples = soak.samples
    warm = next((s for s in samples if s["minute"] >= a.warmup_minutes), samples[0])
    last = samples[-1]
    memory = {}
    for role in sorted({r for s in samples for r in s["rss"]}):
        w, e = warm["rss"].get(role), last["rss"].get(role)
        peak = max(s["rss"].get(role, 0) for s in samples)
        growth = (e - w) / w if w and e else None
        memory[role] = {
            "warm_mb": round(w / 2**20, 1) if w else None,
            "end_mb": round(e / 2**20, 1) if e else None,
            "peak_mb": round(peak / 2**20, 1),
            "growth": round(growth, 4) if growth is not None else None,
            "long_lived": role in LONG_LIVED,
        }
    # files: which kept growing after warm-up, by how much per hour
    t0, sizes0 = next(((t, s) for t, s in soak.file_sizes if t / 60 >= a.warmup_minutes), soak.file_sizes[0])
    t1, sizes1 = soak.file_sizes[-1]
    hours = max((t1 - t0) / 3600, 1e-9)
    growing = sorted(
        (
            {
                "file": f,
                "start_bytes": sizes0.get(f, 0),
                "end_bytes": n,
                "bytes_per_hour": round((n - sizes0.get(f, 0)) / hours),
            }
            for f, n in sizes1.items()
            if n > sizes0.get(f, 0)
        ),
        key=lambda g: -g["bytes_per_hour"],
    )
    minutes = max(last["minute"] - warm["minute"], 1e-9)
    rate = {
        "produced_per_s": round((last["produced"] - warm["produced"]) / (minutes * 60)),
        "committed_per_s": round((last["committed"] - warm["committed"]) / (minutes * 60)),
    }
    worst = max(
        (m["growth"] for m in memory.values() if m["long_lived"] and m["growth"] is not None), default=None
    )
    commit = soak.machine["commit"]  # of the code the soak started
    return {
        "bench": "soak",
        "commit": commit,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": soak.machine,
        "config": {
            "minutes": a.minutes,
            "rate": a.rate,
            "vehicles": a.vehicles,
            "sample_seconds": a.sample_seconds,
            "warmup_minutes": a.warmup_minutes,
            "maintenance_minutes": a.maintenance_minutes,
            "progress_log_max_bytes": a.progress_log_max_bytes,
        },
        "load": {
            "min_1m": min(s["load"][0] for s in samples),
            "max_1m": max(s["load"][0] for s in samples),
            "mean_1m": round(sum(s["load"][0] for s in samples) / len(samples), 2),
        },
        "memory": memory,
        "worst_long_lived_growth": worst,
        "memory_goal_met": worst is not None and worst <= GROWTH_GOAL,
        "runs_before_stop": runs_before_stop,
        "runs_after_stop": runs_after,
        "failed_runs": len(runs_after.get("failed", [])),
        "stream": {
            **rate,
            "lag_end": last["lag"],
            "lag_max_after_warmup": max((s["lag"] or 0) for s in samples if s["minute"] >= warm["minute"]),
            "last_batch_id": last["last_batch_id"],
        },
        "files_growing": growing[:15],
        "maintenance": soak.maintenance,
        "leftover_processes": getattr(soak, "leftovers", []),
        "samples": samples,
    }


def markdown(r: dict[str, Any]) -> str:
    m, c = r["machine"], r["config"]
    s0, s1 = r["samples"][0], r["samples"][-1]
    warm = next((s for s in r["samples"] if s["minute"] >= c["warmup_minutes"]), s0)
    lines = [
        f"# Soak: {c['minutes']} min of `make dev` at {c['rate']:g} events/s",
        "",
        f"Commit {r['commit']}, finished {r['finished_at']}; {m['cores']} cores, {m['mem_gb']} GB RAM ({m['cpu']}); "
        f"load (1 min) {r['load']['min_1m']}–{r['load']['max_1m']}, mean {r['load']['mean_1m']}. "
        f"Samples every {c['sample_seconds']} s; warm-up {c['warmup_minutes']} min; maintenance every "
        f"{c['maintenance_minutes']} min; progress log rotated at {c['progress_log_max_bytes'] or 'the default'} bytes.",
        "",
        "| process | RSS after warm-up (MB) | RSS at end (MB) | peak (MB) | growth |",
        "|---|---:|---:|---:|---:|",
    ]
    for role, v in r["memory"].items():
        g = f"{v['growth'] * 100:+.1f}%" if v["growth"] is not None else "—"
        mark = "" if v["long_lived"] else " (comes and goes)"
        lines.append(
            f"| {role}{mark} | {v['warm_mb'] or '—'} | {v['end_mb'] or '—'} | {v['peak_mb']} | {g} |"
        )
    mb = 2**20
    lines += [
        "",
        "| file / state | after warm-up | at end |",
        "|---|---:|---:|",
        f"| Dagster SQLite storage (event logs, runs, ticks; MB) | {warm['dagster_db_bytes'] / mb:.1f} | {s1['dagster_db_bytes'] / mb:.1f} |",
        f"| Dagster compute logs (MB) | {warm['dagster_compute_log_bytes'] / mb:.1f} | {s1['dagster_compute_log_bytes'] / mb:.1f} |",
        f"| progress log + rotated `.1` (MB) | {(warm['progress_log_bytes'] + warm['progress_log_rotated_bytes']) / mb:.2f} | {(s1['progress_log_bytes'] + s1['progress_log_rotated_bytes']) / mb:.2f} |",
        f"| streaming job logs (MB) | {warm['streaming_logs'] / mb:.2f} | {s1['streaming_logs'] / mb:.2f} |",
        f"| `make dev` logs (MB) | {warm['home_logs'] / mb:.2f} | {s1['home_logs'] / mb:.2f} |",
        f"| checkpoint (files / MB) | {warm['checkpoint_files']} / {warm['checkpoint_bytes'] / mb:.1f} | {s1['checkpoint_files']} / {s1['checkpoint_bytes'] / mb:.1f} |",
        f"| Kafka data (MB) | {warm['kafka_data_bytes'] / mb:.0f} | {s1['kafka_data_bytes'] / mb:.0f} |",
        f"| warehouse files (data + metadata) | {warm['warehouse']['data_files']} + {warm['warehouse']['metadata_files']} | {s1['warehouse']['data_files']} + {s1['warehouse']['metadata_files']} |",
        "",
        f"Stream: produced {r['stream']['produced_per_s']:,} events/s, committed {r['stream']['committed_per_s']:,}/s after warm-up; "
        f"lag at end {r['stream']['lag_end']}, max after warm-up {r['stream']['lag_max_after_warmup']}; last batch {r['stream']['last_batch_id']}.",
        "",
        f"Runs: {r['runs_after_stop'].get('by_job')} — failed: {r['failed_runs']}.",
        "",
        "Files still growing after warm-up (bytes/hour): "
        + (", ".join(f"`{g['file']}` {g['bytes_per_hour']:,}" for g in r["files_growing"][:8]) or "none"),
        "",
    ]
    return "\n".join(lines)


def chart(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = r["samples"]
    x = [s["minute"] for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    a = axes[0][0]
    for role in r["memory"]:
        if r["memory"][role]["long_lived"]:
            a.plot(x, [s["rss"].get(role, 0) / 2**20 for s in samples], marker=".", label=role)
    a.axvline(r["config"]["warmup_minutes"], color="#999", linestyle=":", linewidth=1)
    a.set_title("resident memory (MB)")
    a.legend(fontsize=7)
    a = axes[0][1]
    mb = 2**20
    a.plot(x, [s["dagster_db_bytes"] / mb for s in samples], label="Dagster SQLite (event logs, runs, ticks)")
    a.plot(x, [s["dagster_compute_log_bytes"] / mb for s in samples], label="Dagster compute logs")
    a.plot(
        x,
        [(s["progress_log_bytes"] + s["progress_log_rotated_bytes"]) / mb for s in samples],
        label="progress log (+ .1)",
    )
    a.plot(x, [s["streaming_logs"] / mb for s in samples], label="streaming job logs")
    a.plot(x, [s["home_logs"] / mb for s in samples], label="make dev logs")
    a.plot(x, [s["checkpoint_bytes"] / mb for s in samples], label="checkpoint")
    a.set_title("logs and state (MB)")
    a.legend(fontsize=7)
    a = axes[1][0]
    a.plot(x, [s["warehouse"]["data_files"] for s in samples], label="data files")
    a.plot(x, [s["warehouse"]["metadata_files"] for s in samples], label="metadata files")
    a.plot(x, [s["checkpoint_files"] for s in samples], label="checkpoint files")
    a.set_title("warehouse and checkpoint file count")
    a.set_xlabel("minute")
    a.legend(fontsize=7)
    a = axes[1][1]
    a.plot(x, [s["lag"] or 0 for s in samples], label="lag (records)", color="#c0392b")
    a.set_xlabel("minute")
    a.set_title("lag (records) and load average")
    b = a.twinx()
    b.plot(x, [s["load"][0] for s in samples], label="load 1 min", color="#7f8c8d", linestyle="--")
    a.legend(loc="upper left", fontsize=7)
    b.legend(loc="upper right", fontsize=7)
    m = r["machine"]
    fig.suptitle(
        f"soak {r['config']['minutes']} min at {r['config']['rate']:g} ev/s — {m['cores']} cores, {m['mem_gb']} GB, "
        f"load {r['load']['min_1m']}–{r['load']['max_1m']}, {r['finished_at']}, commit {r['commit']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=float, default=2000)
    p.add_argument(
        "--vehicles", type=int, default=1000, help="fleet size (1,000 keep driving for ~50 min at 2,000/s)"
    )
    p.add_argument("--sample-seconds", type=float, default=60)
    p.add_argument("--warmup-minutes", type=float, default=5)
    p.add_argument("--maintenance-minutes", type=float, default=10)
    p.add_argument(
        "--progress-log-max-bytes",
        type=int,
        default=256 << 10,
        help="rotate the progress log at this size (small, so that the soak rotates it; 0 = default)",
    )
    p.add_argument(
        "--home", type=Path, help="MOVESMART_HOME to use (default: a temporary one, removed after)"
    )
    p.add_argument("--keep-home", action="store_true")
    p.add_argument("--name", default="soak", help="results: bench/results/<name>.{json,md,png}")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    home = (args.home or Path(tempfile.mkdtemp(prefix="movesmart-soak-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, home)
    soak.machine = machine()  # type: ignore[attr-defined]
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    runs_before = runs_after = {}
    interrupted = False
    try:
        soak.start()
        end = soak.started + args.minutes * 60
        next_sample = soak.started + args.sample_seconds
        next_maintenance = soak.started + args.maintenance_minutes * 60
        while time.monotonic() < end:
            if soak.dev.poll() is not None:
                raise RuntimeError(f"make dev exited ({soak.dev.returncode}); see {home / 'soak-dev.log'}")
            now = time.monotonic()
            if now >= next_maintenance:
                soak.run_maintenance()
                next_maintenance += args.maintenance_minutes * 60
            if now >= next_sample:
                s = soak.sample()
                rss = " ".join(f"{k}={v / 2**20:.0f}" for k, v in sorted(s["rss"].items()))
                log(
                    f"min {s['minute']:5.1f} load {s['load'][0]:.1f} lag {s['lag']} produced {s['produced']:,} "
                    f"batch {s['last_batch_id']} runs {s['runs']} | RSS MB {rss} | "
                    f"dagster db {s['dagster_db_bytes'] / 2**20:.1f}MB progress {s['progress_log_bytes'] / 2**20:.2f}"
                    f"+{s['progress_log_rotated_bytes'] / 2**20:.2f}MB wh files {s['warehouse']['files']}"
                )
                next_sample += args.sample_seconds
            time.sleep(1)
        soak.sample()
        runs_before = run_statuses(soak.dagster_home)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping")
    finally:
        soak.stop()
    try:
        runs_after = run_statuses(soak.dagster_home)
    except Exception as exc:  # noqa: BLE001
        runs_after = {"error": str(exc)}
    if not args.no_write:  # the raw samples first: a report that fails can be redone from them
        raw = {"samples": soak.samples, "maintenance": soak.maintenance, "runs_after_stop": runs_after}
        (home / "soak-samples.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    if len(soak.samples) < 2:
        log("fewer than two samples: nothing to report")
        return 1
    r = summarize(soak, runs_before, runs_after)
    r["interrupted"] = interrupted
    md = markdown(r)
    print(md)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(r, indent=1) + "\n")
        (RESULTS / f"{args.name}.md").write_text(md)
        chart(r, RESULTS / f"{args.name}.png")
        log(f"wrote bench/results/{args.name}.{{json,md,png}}")
    if not args.keep_home and args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if (r["failed_runs"] == 0 and r["memory_goal_met"]) else 2


if __name__ == "__main__":
    sys.exit(main())
