"""Benchmark: the streaming job against a faithful reimplementation of the seed's job.

Two measures, each for both jobs, on the same broker and the same topics in one run:

1. Catch-up throughput, whole process: a backlog of >= 3 million simulated events (1% of
   them malformed) is in Kafka; the clock runs from spawning the job until every record is
   visible to a reader that lists the Parquet files (DuckDB). Ours runs with
   `--available-now` and exits by itself; the seed's job never exits, so its clock stops
   when the row count of its output reaches the backlog (then it is killed).
2. Steady-state visibility latency: with the job running and caught up, the simulator
   produces at a fixed rate with wall-clock event times (`--realtime`); a poller lists the
   output files every 0.25 s and records when each record's file first became readable.
   latency = first seen - event time, p50/p95 over all records of the window.

Both jobs run with `local[*]` on the same machine, one after the other (never at the same
time), after one untimed read of the backlog (the first reader of fresh records pays extra). The script starts its own broker on free loopback ports under a temporary home and
stops everything it started. Results: bench/results/streaming.{json,md,png}.

    .venv/bin/python bench/bench_streaming.py [--events 3000000] [--rate 2000] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from movesmart_dagster.schemas import TOPICS  # noqa: E402
from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.stack.kafka_broker import KafkaBroker  # noqa: E402
from movesmart_dagster.stack.processes import free_port  # noqa: E402

RESULTS = REPO / "bench" / "results"
PY = sys.executable


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def machine() -> dict[str, object]:
    mem_gb = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_gb = round(int(line.split()[1]) / 1024 / 1024)
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "cores": os.cpu_count(),
        "mem_gb": mem_gb,
        "cpu": cpu,
        "python": platform.python_version(),
        "load_1m_before": round(os.getloadavg()[0], 2),
    }


class Outputs:
    """Lists Parquet files of a job's output as they appear; reads each new one once."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.seen: dict[Path, int] = {}
        self.rows = 0

    def files(self) -> list[Path]:
        """Parquet files outside `_`/`.` directories, as readers list them. The walk never
        enters those (a job's temporary directories come and go while we list)."""
        out = []
        for root in self.roots:
            for parent, dirs, names in os.walk(root):  # vanished directories are skipped
                dirs[:] = [d for d in dirs if not d.startswith(("_", "."))]
                out += [
                    Path(parent, n) for n in names if n.endswith(".parquet") and not n.startswith(("_", "."))
                ]
        return out

    def poll(self, columns: list[str] | None = None) -> list[tuple[float, object]]:
        """New files since the last poll -> [(seen_at, table)] (tables only if columns)."""
        import pyarrow.parquet as pq

        now = time.time()
        new = []
        for p in self.files():
            if p in self.seen:
                continue
            try:
                meta = pq.read_metadata(p)
                table = pq.read_table(p, columns=columns) if columns else None
            except Exception:  # noqa: BLE001 - a file still being written: next poll
                continue
            self.seen[p] = meta.num_rows
            self.rows += meta.num_rows
            new.append((now, table))
        return new


def spawn(cmd: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen:
    fh = open(log_file, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


def simulate(env: dict[str, str], *args: str) -> dict:
    summary = Path(env["MOVESMART_HOME"]) / f"sim-{time.time_ns()}.json"
    cmd = [
        PY,
        "-m",
        "movesmart_dagster.cli",
        "simulate",
        "--no-progress",
        "--summary-json",
        str(summary),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(summary.read_text())


def seed_cmd(env: dict[str, str], out: Path, driver_memory: str) -> list[str]:
    jars = ",".join(sorted(str(p) for p in (REPO / ".jars" / "spark").glob("*.jar")))
    return [
        PY,
        str(REPO / "bench" / "seed_job.py"),
        "--bootstrap",
        env["KAFKA_BOOTSTRAP_SERVERS"],
        "--out",
        str(out),
        "--jars",
        jars,
        "--master",
        env["MOVESMART_SPARK_MASTER"],
        "--driver-memory",
        driver_memory,
    ]


def catch_up_ours(env: dict[str, str], home: Path, total: int) -> dict:
    t0 = time.time()
    proc = subprocess.run(
        [PY, "-m", "movesmart_dagster.streaming.job", "--available-now"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    elapsed = time.time() - t0
    (home / "ours-catchup.log").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = Outputs([home / "warehouse"])
    out.poll()
    if out.rows != total:
        raise RuntimeError(f"ours landed {out.rows} rows of {total}")
    batches = sum(1 for line in proc.stderr.splitlines() if "committed:" in line)
    return {"seconds": round(elapsed, 2), "events_per_s": round(total / elapsed), "batches": batches}


def catch_up_floor(env: dict[str, str], total: int) -> dict:
    """Spark start + one read of every record, nothing else (bench/floor_job.py)."""
    t0 = time.time()
    proc = subprocess.run(
        [PY, str(REPO / "bench" / "floor_job.py")], env=env, cwd=REPO, capture_output=True, text=True
    )
    elapsed = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    counted = int(proc.stdout.strip().splitlines()[-1])
    if counted != total:
        raise RuntimeError(f"floor job counted {counted} records of {total}")
    return {"seconds": round(elapsed, 2), "events_per_s": round(total / elapsed)}


def catch_up_seed(env: dict[str, str], out_dir: Path, total: int, driver_memory: str, limit_s: float) -> dict:
    out = Outputs([out_dir / "data"])
    t0 = time.time()
    proc = spawn(seed_cmd(env, out_dir, driver_memory), env, out_dir.parent / "seed-catchup.log")
    try:
        while out.rows < total:
            if proc.poll() is not None:
                raise RuntimeError("seed job exited; see seed-catchup.log")
            if time.time() - t0 > limit_s:
                raise RuntimeError(f"seed job: {out.rows} of {total} rows after {limit_s} s")
            time.sleep(0.25)
            out.poll()
        elapsed = time.time() - t0
    finally:
        kill_group(proc)
    return {"seconds": round(elapsed, 2), "events_per_s": round(total / elapsed)}


def _epoch_seconds(table: object) -> list[float]:
    """The `timestamp` column as epoch seconds, whatever unit the writer chose (INT96 -> ns)."""
    import pyarrow as pa

    col = table["timestamp"]  # type: ignore[index]
    per_s = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[col.type.unit]
    return [v / per_s for v in col.cast(pa.int64()).to_pylist() if v is not None]


def latency(
    env: dict[str, str], job: list[str], roots: list[Path], log_file: Path, rate: int, window: int, seed: int
) -> dict:
    """Start the job, wait until its output stops growing, then produce at `rate` for `window` s."""
    out = Outputs(roots)
    out.poll()
    proc = spawn(job, env, log_file)
    try:
        # steady state: a warm-up at the same rate, then wait until the output has not
        # grown for 20 s (the job is caught up and its code is compiled)
        simulate(
            env,
            "--realtime",
            "--rate",
            str(rate),
            "--duration",
            "15",
            "--vehicles",
            "200",
            "--seed",
            str(seed + 1000),
        )
        stable_since, last = time.time(), out.rows
        while time.time() - stable_since < 20:
            if proc.poll() is not None:
                raise RuntimeError(f"job exited; see {log_file}")
            time.sleep(0.5)
            out.poll()
            if out.rows != last:
                stable_since, last = time.time(), out.rows
        summary = Path(env["MOVESMART_HOME"]) / f"latency-{seed}.json"
        producer = subprocess.Popen(
            [
                PY,
                "-m",
                "movesmart_dagster.cli",
                "simulate",
                "--no-progress",
                "--realtime",
                "--rate",
                str(rate),
            ]
            + [
                "--duration",
                str(window),
                "--vehicles",
                "200",
                "--seed",
                str(seed),
                "--summary-json",
                str(summary),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lat: list[float] = []
        produced = None
        deadline = time.time() + window + 180
        while time.time() < deadline:
            time.sleep(0.25)
            for seen_at, table in out.poll(columns=["timestamp"]):
                lat += [seen_at - t for t in _epoch_seconds(table)]
            if produced is None and producer.poll() is not None:
                produced = json.loads(summary.read_text())["delivered"]
            if produced is not None and len(lat) >= produced:
                break
        producer.wait(60)
    finally:
        kill_group(proc, signal.SIGTERM)
    lat.sort()
    return {
        "records": len(lat),
        "produced": produced,
        "p50_s": round(statistics.median(lat), 2),
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 2),
        "max_s": round(lat[-1], 2),
    }


def end_total(env: dict[str, str]) -> int:
    from confluent_kafka import Consumer, TopicPartition

    settings = load_settings(env)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "bench-probe"})
    total = 0
    try:
        md = consumer.list_topics(timeout=10)
        for t in TOPICS:
            for p in md.topics[t].partitions if t in md.topics else []:
                total += consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    finally:
        consumer.close()
    return total


def write_results(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    c, lat, m = result["catch_up"], result["latency"], result["machine"]
    ratio = c["ours"]["events_per_s"] / c["seed"]["events_per_s"]
    floor = c.get("floor")
    rows = [
        (
            "catch-up, events/s (whole process)",
            f"{c['ours']['events_per_s']:,}",
            f"{c['seed']['events_per_s']:,}",
            f">= 100,000 and >= 3x seed (x{ratio:.2f})",
        ),
        ("catch-up, seconds", f"{c['ours']['seconds']}", f"{c['seed']['seconds']}", ""),
    ]
    no_cds = c.get("ours_no_cds")
    if no_cds:
        rows.append(
            (
                "ours without the class-data archive, events/s (s)",
                f"{no_cds['events_per_s']:,} ({no_cds['seconds']})",
                "",
                "`MOVESMART_SPARK_CDS=false`; the seed job maps none",
            )
        )
    if floor:
        rows.append(
            (
                "floor: Spark start + read only, s (events/s)",
                f"{floor['seconds']} ({floor['events_per_s']:,})",
                "",
                f"3x seed would need <= {c['seed']['seconds'] / 3:.1f} s",
            )
        )
    rows += [
        ("visibility latency p50, s", f"{lat['ours']['p50_s']}", f"{lat['seed']['p50_s']}", ""),
        (
            "visibility latency p95, s",
            f"{lat['ours']['p95_s']}",
            f"{lat['seed']['p95_s']}",
            f"<= trigger + 10 s = {result['trigger_s'] + 10} s",
        ),
        ("visibility latency max, s", f"{lat['ours']['max_s']}", f"{lat['seed']['max_s']}", ""),
    ]
    lines = [
        f"Backlog {result['events']:,} events ({result['malformed']:,} malformed); latency window "
        f"{result['window_s']} s at {result['rate']} events/s; ours with `--trigger-interval "
        f'"{result["trigger_s"]} seconds"`, the seed with its default trigger.',
        f"Machine: {m['cores']} cores, {m['mem_gb']} GB RAM ({m['cpu']}), load before {m['load_1m_before']}; "
        f"{result['finished_at']}, commit {result.get('commit')}.",
        "",
        "| measure | ours | seed job | target |",
        "|---|---:|---:|---|",
        *(f"| {a} | {b} | {s} | {t} |" for a, b, s, t in rows),
    ]
    (RESULTS / "streaming.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    chart(result)


def chart(result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, lat = result["catch_up"], result["latency"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["ours", "seed job"]
    bars = [
        ("ours", c["ours"]["events_per_s"], "#2b7bba"),
        ("seed job", c["seed"]["events_per_s"], "#999999"),
    ]
    if c.get("ours_no_cds"):
        bars.insert(1, ("ours, no\nCDS archive", c["ours_no_cds"]["events_per_s"], "#7fb3d5"))
    if c.get("floor"):
        bars.append(("floor:\nread only", c["floor"]["events_per_s"], "#d5d8dc"))
    a1.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    a1.axhline(100_000, color="#c0392b", linestyle="--", linewidth=1, label="target 100k/s")
    a1.axhline(
        3 * c["seed"]["events_per_s"], color="#e67e22", linestyle=":", linewidth=1, label="target 3x seed"
    )
    a1.set_title(f"Catch-up of {result['events'] / 1e6:.1f}M events (whole process)")
    a1.set_ylabel("events / s")
    a1.legend()
    x = range(2)
    a2.bar(
        [i - 0.2 for i in x], [lat["ours"]["p50_s"], lat["seed"]["p50_s"]], 0.4, label="p50", color="#7fb3d5"
    )
    a2.bar(
        [i + 0.2 for i in x], [lat["ours"]["p95_s"], lat["seed"]["p95_s"]], 0.4, label="p95", color="#2b7bba"
    )
    a2.axhline(result["trigger_s"] + 10, color="#c0392b", linestyle="--", linewidth=1, label="target p95")
    a2.set_xticks(list(x), names)
    a2.set_ylabel("seconds, produce -> visible to DuckDB")
    a2.set_title(f"Visibility latency at {result['rate']} events/s")
    a2.legend()
    m = result["machine"]
    fig.suptitle(f"{m['cores']} cores, {m['mem_gb']} GB RAM", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "streaming.png", dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--rate", type=int, default=2000, help="events/s in the latency window")
    ap.add_argument("--window", type=int, default=60, help="seconds of fixed-rate production")
    ap.add_argument("--trigger", type=int, default=10, help="our trigger interval in seconds")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="movesmart-bench-"))
    env = {
        **os.environ,
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
        "MOVESMART_SPARK_MASTER": "local[*]",
        "MOVESMART_SPARK_DRIVER_MEMORY": args.driver_memory,
    }
    result: dict = {
        "machine": machine(),
        "events": args.events,
        "rate": args.rate,
        "window_s": args.window,
        "trigger_s": args.trigger,
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result["commit"] = commit.stdout.strip() or None
    broker = KafkaBroker(load_settings(env), heap="1g")
    broker.up()
    try:
        vehicles = max(50, args.events // 6000)
        log(f"producing a backlog of {args.events:,} events ({vehicles} vehicles, 1% malformed)")
        summary = simulate(
            env,
            "--vehicles",
            str(vehicles),
            "--seed",
            "1",
            "--rate",
            "0",
            "--bad-ratio",
            "0.01",
            "--max-events",
            str(args.events),
        )
        # top up if the fleet arrived before the target
        seed = 2
        while summary["delivered"] < args.events:
            more = simulate(
                env,
                "--vehicles",
                str(vehicles),
                "--seed",
                str(seed),
                "--rate",
                "0",
                "--bad-ratio",
                "0.01",
                "--max-events",
                str(args.events - summary["delivered"]),
            )
            summary["delivered"] += more["delivered"]
            summary["malformed"] += more["malformed"]
            seed += 1
        total = end_total(env)
        result["events"] = total
        result["malformed"] = summary["malformed"]
        log(f"backlog: {total:,} records in Kafka")

        # The first read of freshly produced records is slower for whoever does it (the broker
        # serves them cold: 3M-record catch-up 29.1 s first vs 25.4/26.3 s after). One untimed
        # read first, so every timed job finds the broker in the same state.
        log("warm-up: one untimed read of the backlog (bench/floor_job.py)")
        catch_up_floor(env, total)
        log("catch-up: ours (--available-now)")
        ours = catch_up_ours(env, home, total)
        log(f"  ours: {ours}")
        # the same job without the driver's class-data archive (built by `make setup`): what
        # the archive is worth, and ours on the seed's footing (the seed maps none)
        log("catch-up: ours without the class-data archive (MOVESMART_SPARK_CDS=false)")
        no_cds_home = home / "no-cds"
        no_cds_home.mkdir()
        no_cds_env = {**env, "MOVESMART_HOME": str(no_cds_home), "MOVESMART_SPARK_CDS": "false"}
        ours_no_cds = catch_up_ours(no_cds_env, no_cds_home, total)
        log(f"  ours without the archive: {ours_no_cds}")
        log("catch-up: seed job")
        seed_out = home / "seed"
        seed_res = catch_up_seed(env, seed_out, total, args.driver_memory, limit_s=1800)
        log(f"  seed: {seed_res}")
        log("catch-up floor: Spark start + one read of every record, no parse, no write")
        floor = catch_up_floor(env, total)
        log(f"  floor: {floor}")
        result["catch_up"] = {"ours": ours, "ours_no_cds": ours_no_cds, "seed": seed_res, "floor": floor}

        log(f"latency: ours, trigger {args.trigger} s, {args.rate} events/s for {args.window} s")
        ours_lat = latency(
            env,
            [PY, "-m", "movesmart_dagster.streaming.job", "--trigger-interval", f"{args.trigger} seconds"],
            [home / "warehouse"],
            home / "ours-latency.log",
            args.rate,
            args.window,
            seed=101,
        )
        log(f"  ours: {ours_lat}")
        log("latency: seed job, default trigger")
        seed_lat = latency(
            env,
            seed_cmd(env, seed_out, args.driver_memory),
            [seed_out / "data"],
            home / "seed-latency.log",
            args.rate,
            args.window,
            seed=102,
        )
        log(f"  seed: {seed_lat}")
        result["latency"] = {"ours": ours_lat, "seed": seed_lat}
        result["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_results(result)
        return 0
    finally:
        broker.down()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            log(f"kept {home}")


if __name__ == "__main__":
    sys.exit(main())
