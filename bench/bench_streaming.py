"""Benchmark: the streaming job against a faithful reimplementation of the seed's job.

Two measures, each for both jobs, on the same broker and the same topics in one run:

1. Catch-up throughput, whole process: a backlog of >= 3 million simulated events (1% of
   them malformed) is in Kafka. Both clocks stop at the same event: every row visible to a
   reader, polled every 0.25 s. Ours runs with `--available-now`: visible = in its tables'
   current snapshots through the catalog (its process exit, after Spark stops, is recorded
   too). The seed's job never exits; it writes plain Parquet files (no table format): visible =
   in its output files (then it is killed).
2. Steady-state visibility latency: with the job running and caught up, the simulator
   produces at a fixed rate with wall-clock event times (`--realtime`); a poller looks every
   0.25 s and records when each record first became readable. latency = first seen - event
   time, p50/p95 over all records of the window. "Readable" differs by what each job writes:
   ours, in the current snapshot of its table as a reader through the catalog sees it (pyiceberg
   loads each table from the catalog; a new snapshot's data files are planned by
   `tables.scan.current`, the reader of `movesmart query`); the seed's, a Parquet file on disk.

Where ours spends its time: each batch's log line (read, commit phase, each table's append =
data files written + Iceberg commit), summarized per run, and `bench/commit_probe.py`: appends
of a small batch through the SQLite JDBC catalog, Iceberg's own commit timer, one table vs six
side by side, against a plain Parquet write of the same rows.

Both jobs run with `local[*]` on the same machine, one after the other (never at the same
time), after one untimed read of the backlog (the first reader of fresh records pays extra). The
script starts its own broker on free loopback ports under a temporary home and stops everything
it started. Results: bench/results/streaming.{json,md,png}.

    .venv/bin/python bench/bench_streaming.py [--events 3000000] [--rate 2000] [--window 60]
    .venv/bin/python bench/bench_streaming.py --quick   # 300,000 events, 30 s window: to iterate
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from report import (  # noqa: E402
    chart_footer,
    finished_at,
    git_commit,
    load_1m,
    machine,
    machine_line,
    pyplot,
    save_chart,
    write_result,
)

from movesmart_dagster.schemas import ALL_TABLES, TABLES, TOPICS  # noqa: E402
from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.stack.kafka_broker import KafkaBroker  # noqa: E402
from movesmart_dagster.stack.processes import free_port  # noqa: E402

PY = sys.executable


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


class Outputs:
    """The seed's output: lists its plain Parquet files as they appear; reads each new one once."""

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


class CatalogOutputs:
    """Our output as a reader through the Iceberg catalog sees it.

    Each poll loads every table from the catalog (pyiceberg, the catalog `movesmart query`
    opens); when a table's current snapshot changed, `tables.scan.current` plans its data files
    (what `movesmart query` hands to DuckDB) and the files not seen before are read once. A row
    is visible from the poll that first found it in a current snapshot: files written but not
    committed are never counted."""

    def __init__(self, env: dict[str, str], tables: tuple[str, ...] = TABLES) -> None:
        self.settings = load_settings(env)
        self.tables = tables
        self.snapshots: dict[str, int | None] = {}
        self.seen: set[str] = set()
        self.rows = 0
        self.poll_seconds: list[float] = []
        self._catalog: object = None

    def poll(self, columns: list[str] | None = None) -> list[tuple[float, object]]:
        import pyarrow.parquet as pq

        from movesmart_dagster.tables import scan

        now = time.time()
        if self._catalog is None:
            self._catalog = scan.reader_catalog(self.settings)
            if self._catalog is None:
                return []  # no catalog yet: the job has not created its tables
        new = []
        for table in self.tables:
            iceberg = scan.load(self.settings, table, self._catalog)
            snap = iceberg.current_snapshot() if iceberg is not None else None
            if snap is None or self.snapshots.get(table) == snap.snapshot_id:
                continue
            current = scan.current(self.settings, table, self._catalog)
            self.snapshots[table] = current.snapshot_id
            for uri in current.files:
                if uri in self.seen:
                    continue
                path = scan.local_path(uri)
                self.seen.add(uri)
                self.rows += pq.read_metadata(path).num_rows
                new.append((now, pq.read_table(path, columns=columns) if columns else None))
        self.poll_seconds.append(time.time() - now)
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


def catalog_rows(settings: object, catalog: object) -> int:
    """Rows in the current snapshots of every table, as a reader through the catalog sees them
    (each snapshot's total-records: no data file is opened)."""
    from movesmart_dagster.tables import scan
    from movesmart_dagster.tables.catalog import table_summary

    rows = 0
    for table in ALL_TABLES:
        iceberg = scan.load(settings, table, catalog)
        rows += table_summary(iceberg)["total_rows"] if iceberg is not None else 0
    return rows


def catch_up_ours(env: dict[str, str], home: Path, total: int) -> dict:
    """Timed as the seed's job is: from start until every row is visible (here in the tables'
    current snapshots through the catalog, polled every 0.25 s as the seed's files are); the
    process exit (`--available-now` ends after the last batch) is recorded beside it."""
    from movesmart_dagster.tables import scan

    settings = load_settings(env)
    log_file = home / "ours-catchup.log"
    log_file.unlink(missing_ok=True)
    catalog = None
    rows = 0
    t0 = time.time()
    proc = spawn([PY, "-m", "movesmart_dagster.streaming.job", "--available-now"], env, log_file)
    try:
        while rows < total:
            exited = proc.poll() is not None
            catalog = catalog or scan.reader_catalog(settings)
            rows = catalog_rows(settings, catalog) if catalog is not None else 0
            if rows >= total or exited:
                break
            time.sleep(0.25)
        visible_s = time.time() - t0
        proc.wait()
        exit_s = time.time() - t0
    finally:
        kill_group(proc)
    stderr = log_file.read_text(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(stderr[-3000:])
    if rows != total:
        raise RuntimeError(f"ours: {rows} rows of {total} in the current snapshots")
    return {
        "seconds": round(visible_s, 2),
        "events_per_s": round(total / visible_s),
        "exit_seconds": round(exit_s, 2),
        "batches": batch_costs(stderr),
    }


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
    env: dict[str, str],
    job: list[str],
    out: Outputs | CatalogOutputs,
    log_file: Path,
    rate: int,
    window: int,
    seed: int,
    bursts: int = 0,
) -> dict:
    """Start the job, wait until its output stops growing, then produce at `rate` for `window` s;
    then `bursts` times 100 records at once on the idle job, each visible before the next."""
    out.poll()
    base = out.rows
    proc = spawn(job, env, log_file)
    try:
        # steady state: a warm-up at the same rate; once every warm-up record is visible, wait
        # until the output has not grown for 20 s (the job is caught up and its code is compiled)
        warm = simulate(
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
        deadline = time.time() + 600
        stable_since, last = time.time(), out.rows
        while out.rows - base < warm["delivered"] or time.time() - stable_since < 20:
            if proc.poll() is not None:
                raise RuntimeError(f"job exited; see {log_file}")
            if time.time() > deadline:
                raise RuntimeError(
                    f"warm-up: {out.rows - base} of {warm['delivered']} rows visible after 600 s"
                )
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
        by_event_time: list[tuple[float, float]] = []  # (event time, latency): a growing lag shows
        produced = None
        deadline = time.time() + window + 180
        while time.time() < deadline:
            time.sleep(0.25)
            for seen_at, table in out.poll(columns=["timestamp"]):
                pairs = [(t, seen_at - t) for t in _epoch_seconds(table)]
                by_event_time += pairs
                lat += [d for _, d in pairs]
            if produced is None and producer.poll() is not None:
                produced = json.loads(summary.read_text())["delivered"]
            if produced is not None and len(lat) >= produced:
                break
        producer.wait(60)
        burst_s = [_burst(env, out, seed + 2000 + i) for i in range(bursts)]
    finally:
        # SIGTERM to the job's Python process only: ours finishes its batch (and logs it) and
        # stops its JVM; then whatever is left of the group goes
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(120)
        kill_group(proc)
    lat.sort()
    polls = out.poll_seconds if isinstance(out, CatalogOutputs) else []
    return {
        "records": len(lat),
        "produced": produced,
        **lag_trend(by_event_time),
        "p50_s": round(statistics.median(lat), 2),
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 2),
        "max_s": round(lat[-1], 2),
        "visible_in": "current Iceberg snapshot, through the catalog"
        if isinstance(out, CatalogOutputs)
        else "Parquet files on disk (plain Parquet sink)",
        **({"poll_median_s": round(statistics.median(polls), 3)} if polls else {}),
        **(
            {"burst_visible_median_s": round(statistics.median(burst_s), 2), "burst_visible_s": burst_s}
            if bursts
            else {}
        ),
    }


def lag_trend(by_event_time: list[tuple[float, float]]) -> dict:
    """Median latency of the window's first and last thirds (by event time): a job that keeps up
    has the same latency at the end as at the start; one falling behind, a growing one."""
    if len(by_event_time) < 3:
        return {}
    ordered = [d for _, d in sorted(by_event_time)]
    third = len(ordered) // 3
    return {
        "first_third_p50_s": round(statistics.median(ordered[:third]), 2),
        "last_third_p50_s": round(statistics.median(ordered[-third:]), 2),
    }


def keeps_up(lat: dict, budget_s: float) -> bool:
    """Every record visible, p95 within the budget, and the lag not growing over the window."""
    first, last = lat.get("first_third_p50_s"), lat.get("last_third_p50_s")
    return (
        lat["produced"] is not None
        and lat["records"] >= lat["produced"]
        and lat["p95_s"] <= budget_s
        and first is not None
        and last <= 1.5 * first + 0.5
    )


BURST = 100


def _burst(env: dict[str, str], out: Outputs | CatalogOutputs, seed: int) -> float:
    """100 records produced at once (every one acknowledged) to an idle job: seconds from the
    producer's exit until all of them are visible. Ours: its batch line says trigger-to-commit."""
    out.poll()
    base = out.rows
    simulate(env, "--rate", "0", "--vehicles", "5", "--seed", str(seed), "--max-events", str(BURST))
    acked = time.time()
    deadline = acked + 120
    while out.rows - base < BURST:
        if time.time() > deadline:
            raise RuntimeError(f"burst: {out.rows - base} of {BURST} rows visible after 120 s")
        time.sleep(0.05)
        out.poll()
    return round(time.time() - acked, 2)


_BATCH_LINE = re.compile(
    r"batch (\d+) committed: (\d+) rows, (\d+) quarantined, (?:(\d+) files, )?(\d+) ms \(([^)]*)\)"
    r"(?:, appends (.*?))?"
    r"(?:, \d+ table\(s\) already held it)?$"
)


def batch_costs(job_log: str) -> dict:
    """Where our batches spend their time, from the job's log line per committed batch:
    `read` (Kafka read, fast-path UDF, cached batch), `commit` (everything after: the tables'
    appends side by side), each table's append (its data files written + its Iceberg commit)."""
    batches = []
    for line in job_log.splitlines():
        m = _BATCH_LINE.search(line.strip())
        if not m:
            continue
        phases = {k: float(v.rstrip("s")) for k, v in (x.split() for x in m.group(6).split(", ") if x)}
        appends = {
            k: float(v.rstrip("s")) for k, v in (x.split() for x in (m.group(7) or "").split(", ") if x)
        }
        batches.append(
            {
                "rows": int(m.group(2)) + int(m.group(3)),
                "files": int(m.group(4) or 0),
                "ms": int(m.group(5)),
                "phases": phases,
                "appends": appends,
            }
        )
    # the bursts on the idle job (goal 4) apart from the steady state's batches
    small = [b for b in batches if 0 < b["rows"] <= 2 * BURST]
    busy = [b for b in batches if b["rows"] > 2 * BURST] or small

    def med(values: list[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    return {
        "count": len(batches),
        "with_rows": len(busy),
        "rows_median": med([b["rows"] for b in busy]),
        "duration_median_s": med([b["ms"] / 1000 for b in busy]),
        "duration_max_s": round(max(b["ms"] for b in busy) / 1000, 2) if busy else None,
        "files_median": med([b["files"] for b in busy]),
        "small_batches": len(small),
        "small_batch_rows_median": med([b["rows"] for b in small]),
        "small_batch_median_s": med([b["ms"] / 1000 for b in small]),
        "small_batch_phases_median_s": {
            k: med([b["phases"].get(k, 0.0) for b in small]) for k in ("read", "commit")
        },
        "read_median_s": med([b["phases"].get("read", 0.0) for b in busy]),
        "commit_phase_median_s": med([b["phases"].get("commit", 0.0) for b in busy]),
        "append_median_s": med([v for b in busy for v in b["appends"].values()]),
        "slowest_append_median_s": med([max(b["appends"].values()) for b in busy if b["appends"]]),
        "append_median_by_table_s": {
            t: med([b["appends"][t] for b in busy if t in b["appends"]]) for t in ALL_TABLES
        },
    }


def commit_probe(env: dict[str, str], home: Path, rows: int, rounds: int) -> dict | None:
    """bench/commit_probe.py in its own process (its own Spark session, the job's settings)."""
    out = home / "commit-probe.json"
    proc = subprocess.run(
        [
            PY,
            str(REPO / "bench" / "commit_probe.py"),
            "--rows",
            str(rows),
            "--rounds",
            str(rounds),
            "--out",
            str(out),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    (home / "commit-probe.log").write_text(proc.stderr)
    if proc.returncode != 0:
        log(f"commit probe failed (exit {proc.returncode}); see {home / 'commit-probe.log'}")
        return None
    return json.loads(out.read_text())


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


PLAIN_PARQUET_RATIO = (1.15, 1.28)  # ours/seed catch-up of the plain-Parquet job (issue 12)


def _x(a: float, b: float) -> str:
    return f"x{a / b:.2f}"


def write_results(result: dict, write: bool = True) -> None:
    c, lat = result["catch_up"], result["latency"]
    ratio = c["ours"]["events_per_s"] / c["seed"]["events_per_s"]
    result["catch_up_ratio"] = round(ratio, 3)
    result["p95_ratio"] = round(lat["ours"]["p95_s"] / lat["seed"]["p95_s"], 2)
    floor = c.get("floor")
    lo, hi = PLAIN_PARQUET_RATIO
    verdict = "met" if ratio >= lo else "not met"
    rows = [
        (
            "catch-up, events/s (whole process)",
            f"{c['ours']['events_per_s']:,}",
            f"{c['seed']['events_per_s']:,}",
            f"ours/seed {_x(ratio, 1)}; >= plain-Parquet job's {lo}-{hi}x: {verdict}",
        ),
        (
            "catch-up, seconds",
            f"{c['ours']['seconds']}",
            f"{c['seed']['seconds']}",
            f"ours' process exited at {c['ours']['exit_seconds']} s" if "exit_seconds" in c["ours"] else "",
        ),
    ]
    no_cds = c.get("ours_no_cds")
    if no_cds:
        rows.append(
            (
                "ours without the class-data archive, events/s (s)",
                f"{no_cds['events_per_s']:,} ({no_cds['seconds']})",
                "",
                f"`MOVESMART_SPARK_CDS=false` (the seed maps none): {_x(no_cds['events_per_s'], c['seed']['events_per_s'])}",
            )
        )
    if floor:
        rows.append(
            (
                "floor: Spark start + read only, s (events/s)",
                f"{floor['seconds']} ({floor['events_per_s']:,})",
                "",
                f"ours at {c['ours']['events_per_s'] / floor['events_per_s']:.0%} of the floor's rate",
            )
        )
    rows += [
        ("visibility latency p50, s", f"{lat['ours']['p50_s']}", f"{lat['seed']['p50_s']}", ""),
        (
            "visibility latency p95, s",
            f"{lat['ours']['p95_s']}",
            f"{lat['seed']['p95_s']}",
            f"ours/seed {_x(lat['ours']['p95_s'], lat['seed']['p95_s'])}",
        ),
        ("visibility latency max, s", f"{lat['ours']['max_s']}", f"{lat['seed']['max_s']}", ""),
    ]
    if "burst_visible_median_s" in lat["ours"] and "burst_visible_median_s" in lat["seed"]:
        small = lat["ours"].get("batches") or {}
        rows += [
            (
                f"{BURST} records at once to the idle job: all visible after the last ack, median s",
                f"{lat['ours']['burst_visible_median_s']}",
                f"{lat['seed']['burst_visible_median_s']}",
                f"{len(lat['ours']['burst_visible_s'])} bursts each; ours/seed "
                f"{_x(lat['ours']['burst_visible_median_s'], lat['seed']['burst_visible_median_s'])}",
            ),
            (
                f"fixed cost: trigger to committed, batch of ~{BURST} records, median s",
                f"{small.get('small_batch_median_s')}",
                "",
                f"{small.get('small_batches')} batches of median {small.get('small_batch_rows_median')} records; "
                f"read {small.get('small_batch_phases_median_s', {}).get('read')} s, appends "
                f"{small.get('small_batch_phases_median_s', {}).get('commit')} s",
            ),
        ]
    during = result.get("load_1m_during", {})
    loads = ", ".join(
        f"{k} {v}" + (f" (mean during {during[k]})" if k in during else "")
        for k, v in result["load_1m"].items()
    )
    lines = [
        f"Backlog {result['events']:,} events ({result['malformed']:,} malformed); latency window "
        f"{result['window_s']} s at {result['rate']} events/s; ours with `--trigger-interval "
        f'"{result["trigger"]}"` (its default unless the run said otherwise), the seed with its default trigger.',
        "Ours writes Apache Iceberg tables: a row counts as visible once it is in its table's current "
        "snapshot, read through the catalog (pyiceberg, the reader of `movesmart query`). The seed "
        "writes plain Parquet files (no table format): visible = in a Parquet file on disk. Catch-up "
        "clock, both jobs: from the process start until every row is visible (polled every 0.25 s).",
        machine_line(result, f"before each run: {loads}"),
        "",
        "| measure | ours (Iceberg) | seed job (plain Parquet) | note |",
        "|---|---:|---:|---|",
        *(f"| {a} | {b} | {s} | {t} |" for a, b, s, t in rows),
        "",
        "Where our batches spend their time (the job's log line per batch; append = the table's data "
        "files written + its Iceberg commit; the six tables' appends run side by side):",
        "",
        "| run | batches | records/batch | batch, s | read, s | appends phase, s | one append, s | slowest append, s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, costs in (("catch-up", c["ours"].get("batches")), ("latency", lat["ours"].get("batches"))):
        if costs:
            lines.append(
                f"| {name} | {costs['with_rows']} | {costs['rows_median']:,.0f} | {costs['duration_median_s']} "
                f"(max {costs['duration_max_s']}) | {costs['read_median_s']} | {costs['commit_phase_median_s']} "
                f"| {costs['append_median_s']} | {costs['slowest_append_median_s']} |"
            )
    lines.append("")
    lines.append("(medians over the batches with rows)")
    probe = result.get("commit_probe")
    if probe:
        lines += ["", probe_markdown(probe)]
    text = "\n".join(lines) + "\n"
    print(text)
    if not write:
        return
    write_result("streaming", result, text)
    chart(result)


def probe_markdown(probe: dict) -> str:
    one, six = probe["one_table"], probe["six_tables"]
    rows = [
        (
            f"append of {probe['rows']:,} rows to one table",
            one["append_median_s"],
            one["append_max_s"],
        ),
        (
            "  of which Iceberg's commit (its CommitReport timer)",
            one.get("commit_median_s"),
            one.get("commit_max_s"),
        ),
        ("  the same rows written as plain Parquet", one["parquet_median_s"], one["parquet_max_s"]),
        ("six tables, one after another", six["sequential_median_s"], six["sequential_max_s"]),
        ("six tables side by side (threads, as the job)", six["parallel_median_s"], six["parallel_max_s"]),
    ]
    return "\n".join(
        [
            f"Commit probe (`bench/commit_probe.py`, {probe['rounds']} rounds, SQLite JDBC catalog, "
            f"the job's Spark settings; load before {probe.get('load_1m_before')}):",
            "",
            "| operation | median, s | max, s |",
            "|---|---:|---:|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        ]
    )


def chart(result: dict) -> None:
    plt = pyplot()
    c, lat = result["catch_up"], result["latency"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["ours (Iceberg,\nthrough the catalog)", "seed job\n(Parquet files)"]
    bars = [
        ("ours\n(Iceberg)", c["ours"]["events_per_s"], "#2b7bba"),
        ("seed job", c["seed"]["events_per_s"], "#999999"),
    ]
    if c.get("ours_no_cds"):
        bars.insert(1, ("ours, no\nCDS archive", c["ours_no_cds"]["events_per_s"], "#7fb3d5"))
    if c.get("floor"):
        bars.append(("floor:\nread only", c["floor"]["events_per_s"], "#d5d8dc"))
    a1.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    a1.axhline(
        PLAIN_PARQUET_RATIO[0] * c["seed"]["events_per_s"],
        color="#e67e22",
        linestyle=":",
        linewidth=1,
        label=f"{PLAIN_PARQUET_RATIO[0]}x seed (plain-Parquet job's ratio)",
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
    a2.set_xticks(list(x), names)
    a2.set_ylabel("seconds, produce -> visible to a reader")
    a2.set_title(f"Visibility latency at {result['rate']} events/s")
    a2.legend()
    save_chart(fig, "streaming", chart_footer(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3_000_000)
    ap.add_argument("--rate", type=int, default=2000, help="events/s in the latency window")
    ap.add_argument("--window", type=int, default=60, help="seconds of fixed-rate production")
    ap.add_argument(
        "--trigger",
        type=float,
        default=None,
        help="our trigger interval in seconds (default: the job's default)",
    )
    ap.add_argument(
        "--bursts", type=int, default=10, help="100-record bursts on the idle job after the window (goal 4)"
    )
    ap.add_argument(
        "--latency-only",
        metavar="TRIGGERS",
        help="comma-separated trigger intervals in seconds (e.g. 0,2,10): ours at each, then the seed, "
        "the latency window only; printed, not written",
    )
    ap.add_argument(
        "--rate-sweep",
        metavar="RATES",
        help="comma-separated events/s (e.g. 2000,5000,10000,20000): at each, ours then the seed's job, "
        "the latency window only (goal 3); writes bench/results/streaming_rates.* "
        "(streaming_rates_trigger_<T>s.* with --trigger T)",
    )
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--probe-rows", type=int, default=2000, help="rows per append in the commit probe")
    ap.add_argument("--probe-rounds", type=int, default=8, help="appends per table in the commit probe")
    ap.add_argument(
        "--skip-no-cds",
        action="store_true",
        help="no run without the class-data archive (saves one catch-up of ours on a busy machine)",
    )
    ap.add_argument("--seed-first", action="store_true", help="the seed's catch-up before ours")
    ap.add_argument(
        "--catch-up-only", action="store_true", help="ours and the seed's catch-up only; printed, not written"
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="to iterate: 300,000 events, a 30 s window, no run without the archive, results not written",
    )
    args = ap.parse_args()
    if args.quick:
        args.events, args.window = min(args.events, 300_000), min(args.window, 30)

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
        "trigger": f"{args.trigger:g} seconds" if args.trigger is not None else default_trigger(),
        "load_1m": {},  # before each timed run, and at the end
        "load_1m_during": {},  # mean of 5-s samples during each run
    }
    samples: list[tuple[float, float]] = []
    marks: list[tuple[str, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(5):
            samples.append((time.time(), os.getloadavg()[0]))

    threading.Thread(target=sample, name="load-sampler", daemon=True).start()

    def load_before(run: str) -> None:
        """Marks the start of a run (and the end of the one before); the load at that moment."""
        now = time.time()
        if marks:
            prev, since = marks[-1]
            during = [v for t, v in samples if since <= t < now]
            if during:
                result["load_1m_during"][prev] = round(statistics.mean(during), 1)
        marks.append((run, now))
        result["load_1m"][run] = load_1m()

    result["commit"] = git_commit()
    broker = KafkaBroker(load_settings(env), heap="1g")
    broker.up()
    try:
        if args.latency_only:
            return latency_only(env, home, args, load_before)
        if args.rate_sweep:
            return rate_sweep(env, home, args, result, load_before)
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
        seed_out = home / "seed"
        if args.seed_first:
            log("catch-up: seed job first (plain Parquet files; visible = rows in its files on disk)")
            load_before("catch_up_seed")
            seed_res = catch_up_seed(env, seed_out, total, args.driver_memory, limit_s=1800)
            log(f"  seed: {seed_res}")
        log("catch-up: ours (--available-now)")
        load_before("catch_up_ours")
        ours = catch_up_ours(env, home, total)
        log(f"  ours: {ours}")
        # the same job without the driver's class-data archive (built by `make setup`): what
        # the archive is worth, and ours on the seed's footing (the seed maps none)
        ours_no_cds = None
        if not (args.quick or args.skip_no_cds):
            log("catch-up: ours without the class-data archive (MOVESMART_SPARK_CDS=false)")
            no_cds_home = home / "no-cds"
            no_cds_home.mkdir()
            no_cds_env = {**env, "MOVESMART_HOME": str(no_cds_home), "MOVESMART_SPARK_CDS": "false"}
            load_before("catch_up_ours_no_cds")
            ours_no_cds = catch_up_ours(no_cds_env, no_cds_home, total)
            log(f"  ours without the archive: {ours_no_cds}")
        if not args.seed_first:
            log("catch-up: seed job (plain Parquet files; visible = rows in its files on disk)")
            load_before("catch_up_seed")
            seed_res = catch_up_seed(env, seed_out, total, args.driver_memory, limit_s=1800)
            log(f"  seed: {seed_res}")
        if args.catch_up_only:
            load_before("end")
            ratio = ours["events_per_s"] / seed_res["events_per_s"]
            log(
                f"catch-up only: ours/seed x{ratio:.2f}; load {result['load_1m']}, during {result['load_1m_during']}"
            )
            return 0
        log("catch-up floor: Spark start + one read of every record, no parse, no write")
        load_before("catch_up_floor")
        floor = catch_up_floor(env, total)
        log(f"  floor: {floor}")
        result["catch_up"] = {"ours": ours, "ours_no_cds": ours_no_cds, "seed": seed_res, "floor": floor}

        log(f"latency: ours, trigger {result['trigger']}, {args.rate} events/s for {args.window} s")
        load_before("latency_ours")
        ours_lat = latency_of_ours(env, home / "ours-latency.log", args, result["trigger"], seed=101)
        log(f"  ours: {ours_lat}")
        log("latency: seed job, default trigger (visible = its Parquet files on disk)")
        load_before("latency_seed")
        seed_lat = latency_of_seed(env, home / "seed-latency.log", seed_out, args)
        log(f"  seed: {seed_lat}")
        result["latency"] = {"ours": ours_lat, "seed": seed_lat}
        log(f"commit probe: {args.probe_rounds} appends of {args.probe_rows} rows, one table and six")
        load_before("commit_probe")
        result["commit_probe"] = commit_probe(env, home, args.probe_rows, args.probe_rounds)
        load_before("end")
        result["finished_at"] = finished_at()
        write_results(result, write=not args.quick)
        return 0
    finally:
        broker.down()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            log(f"kept {home}")


def latency_of_ours(
    env: dict[str, str], log_file: Path, args: argparse.Namespace, trigger: str, seed: int
) -> dict:
    """`latency` of our job at this trigger, with where its batches spent their time."""
    lat = latency(
        env,
        [PY, "-m", "movesmart_dagster.streaming.job", "--trigger-interval", trigger],
        CatalogOutputs(env),
        log_file,
        args.rate,
        args.window,
        seed=seed,
        bursts=args.bursts,
    )
    lat["batches"] = batch_costs(log_file.read_text(errors="replace"))
    return lat


def latency_of_seed(
    env: dict[str, str], log_file: Path, seed_out: Path, args: argparse.Namespace, seed: int = 102
) -> dict:
    """`latency` of the seed's job (visible = its Parquet files on disk)."""
    return latency(
        env,
        seed_cmd(env, seed_out, args.driver_memory),
        Outputs([seed_out / "data"]),
        log_file,
        args.rate,
        args.window,
        seed=seed,
        bursts=args.bursts,
    )


def default_trigger() -> str:
    """The job's default trigger interval (MOVESMART_STREAM_TRIGGER_INTERVAL's default)."""
    from movesmart_dagster.settings import Settings

    return str(Settings.model_fields["stream_trigger_interval"].default)


def latency_only(
    env: dict[str, str], home: Path, args: argparse.Namespace, load_before: Callable[[str], None]
) -> int:
    """Ours at each trigger interval, then the seed's job, on an empty broker: p50/p95/max."""
    rows = []
    for i, trigger in enumerate(float(t) for t in args.latency_only.split(",")):
        load_before(f"latency_ours_{trigger:g}")
        log_file = home / f"ours-latency-{trigger:g}.log"
        lat = latency_of_ours(env, log_file, args, f"{trigger:g} seconds", seed=201 + i)
        log(f"  ours, trigger {trigger:g} s: {lat}")
        rows.append((f"ours, trigger {trigger:g} s", lat))
    load_before("latency_seed")
    seed_lat = latency_of_seed(env, home / "seed-latency.log", home / "seed", args)
    rows.append(("seed, default trigger", seed_lat))
    load_before("end")
    print(
        f"| job | p50, s | p95, s | max, s | p95 / seed's | {BURST} records visible, median s |"
        f"  ({args.rate} events/s for {args.window} s; {args.bursts} bursts)"
    )
    for name, lat in rows:
        print(
            f"| {name} | {lat['p50_s']} | {lat['p95_s']} | {lat['max_s']} | "
            f"{lat['p95_s'] / seed_lat['p95_s']:.2f} | {lat.get('burst_visible_median_s', '-')} |"
        )
    return 0


def rates_chart(result: dict, name: str) -> None:
    """Latency (p50, p95) against the input rate, both jobs, with goal 1's budget."""
    plt = pyplot()
    runs, rates, budget = result["runs"], result["rates"], result["budget_p95_s"]
    fig, ax = plt.subplots(figsize=(8.5, 4))
    for job, color in (("ours", "#2b7bba"), ("seed", "#999999")):
        mine = [r for r in runs if r["job"] == job]
        ax.plot([r["rate"] for r in mine], [r["p95_s"] for r in mine], "o-", color=color, label=f"{job} p95")
        ax.plot([r["rate"] for r in mine], [r["p50_s"] for r in mine], "o:", color=color, label=f"{job} p50")
    ax.axhline(budget, color="#e67e22", linestyle="--", linewidth=1, label=f"budget {budget} s (goal 1)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(rates, [f"{r:,}" for r in rates])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("input rate, events/s")
    ax.set_ylabel("seconds, produce -> visible to a reader")
    ax.set_title(f"Visibility latency against the input rate (ours: trigger {result['trigger']})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    save_chart(fig, name, chart_footer(result))


def rate_sweep(
    env: dict[str, str],
    home: Path,
    args: argparse.Namespace,
    result: dict,
    load_before: Callable[[str], None],
) -> int:
    """Goal 3: at each rate, ours then the seed's job (interleaved, same broker); the highest rate
    each keeps up at within goal 1's latency budget: 1.5x the seed's p95 at the lowest rate."""
    rates = [int(r) for r in args.rate_sweep.split(",")]
    runs: list[dict] = []
    for i, rate in enumerate(rates):
        sweep_args = argparse.Namespace(**{**vars(args), "rate": rate, "bursts": 0})
        for job in ("ours", "seed"):
            load_before(f"{job}_{rate}")
            log(f"rate sweep: {job} at {rate:,} events/s for {args.window} s")
            if job == "ours":
                lat = latency_of_ours(
                    env, home / f"ours-{rate}.log", sweep_args, result["trigger"], seed=301 + i
                )
                lat.pop("batches", None)
            else:
                lat = latency_of_seed(
                    env, home / f"seed-{rate}.log", home / f"seed-{rate}", sweep_args, seed=401 + i
                )
            log(f"  {job} at {rate:,}: {lat}")
            runs.append(
                {"job": job, "rate": rate, "load_1m_before": result["load_1m"][f"{job}_{rate}"], **lat}
            )
    load_before("end")
    seed_low = next(r for r in runs if r["job"] == "seed" and r["rate"] == rates[0])
    budget = round(1.5 * seed_low["p95_s"], 2)
    for r in runs:
        r["keeps_up"] = keeps_up(r, budget)
    highest = {
        job: max((r["rate"] for r in runs if r["job"] == job and r["keeps_up"]), default=None)
        for job in ("ours", "seed")
    }
    result.update(
        rates=rates,
        budget_p95_s=budget,
        runs=runs,
        highest_rate_kept_up=highest,
        finished_at=finished_at(),
    )
    lines = [
        "# Streaming: visibility latency against the input rate (goal 3)",
        "",
        f"At each rate the simulator produces for {args.window} s to the running, caught-up job "
        f"(ours at trigger {result['trigger']}{' (its default)' if args.trigger is None else ''}, "
        "then the seed's job); latency = first seen by a reader - event time. "
        f"A job *keeps up* at a rate when every record became visible, its p95 is within the budget "
        f"(goal 1: 1.5x the seed's p95 at {rates[0]:,} events/s = **{budget} s**) and the lag does not "
        "grow (the last third of the window's median latency at most 1.5x the first third's + 0.5 s).",
        "",
        "| rate, events/s | job | records | p50, s | p95, s | max, s | median 1st / last third, s | keeps up | load before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['rate']:,} | {r['job']} | {r['records']:,} of {r['produced'] or 0:,} | {r['p50_s']} | "
            f"{r['p95_s']} | {r['max_s']} | {r.get('first_third_p50_s')} / {r.get('last_third_p50_s')} | "
            f"{'yes' if r['keeps_up'] else 'no'} | {r['load_1m_before']} |"
        )
    lines += [
        "",
        f"Highest rate kept up: ours **{highest['ours'] or 'none'}**, the seed's job **{highest['seed'] or 'none'}** "
        f"(of {', '.join(f'{x:,}' for x in rates)} events/s).",
        "",
        machine_line(result, f"before each run as listed, at the end {result['load_1m']['end']}"),
        "",
    ]
    # the default trigger's sweep is goal 3's figure; another trigger's is written beside it
    name = "streaming_rates" if args.trigger is None else f"streaming_rates_trigger_{args.trigger:g}s"
    write_result(name, result, "\n".join(lines))
    rates_chart(result, name)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
