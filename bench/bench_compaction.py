"""Benchmark: one day of small-batch output before and after `movesmart tables compact`.

Why: every micro-batch appends a few small files per table and day; a reader opens each one.
Issue 12's goal: after compaction, a DuckDB query over a day takes at most 1.5x the time of the
same query over the same rows in one Parquet file.

How: the script starts its own broker on free loopback ports under a temporary home, produces
`--events` simulated records whose event times fall in one day, and lets the real streaming job
(`--available-now --max-offsets-per-trigger --batch-records`) write them in many small batches
— one Iceberg append per table per batch, as a stream with a short trigger would. Then, for one
day partition of one table (`--table`, the day holding most of its rows):

- files and bytes of the partition in the table's current snapshot (pyiceberg's scan plan),
  before and after `movesmart tables compact --table T --day D` (run as a user runs it);
- one aggregate over that day through the reader of `movesmart query` (`tables.connect`:
  views over each table's current snapshot, DuckDB's `read_parquet`), before and after the
  compaction, and over the same rows copied into one Parquet file by DuckDB (zstd) — each the
  median of `--repeat` runs after one untimed run, and the three answers must be equal.

Results: bench/results/compaction.{json,md,png}.

    .venv/bin/python bench/bench_compaction.py [--events 200000] [--batch-records 4000]
    .venv/bin/python bench/bench_compaction.py --quick   # 60,000 events: to iterate
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_streaming import end_total, simulate  # noqa: E402
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

from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.stack.kafka_broker import KafkaBroker  # noqa: E402
from movesmart_dagster.stack.processes import free_port  # noqa: E402

PY = sys.executable
GOAL = 1.5  # after compaction <= 1.5x the one-file time (issue 12)
START = "2024-06-03T00:00:00"  # the simulated clock's start: the fleet stays within this day
# an aggregate over the day, through the `movesmart query` views (gps_data's columns)
QUERY = (
    "SELECT vehicleType, direction, count(*) AS n, count(DISTINCT deviceId) AS devices, "
    'avg(speed) AS avg_speed, max(speed) AS max_speed, min("timestamp") AS first, max("timestamp") AS last '
    "FROM {source} WHERE event_date = DATE '{day}' GROUP BY ALL ORDER BY ALL"
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def partition_files(env: dict[str, str], table: str, day: str) -> dict[str, int]:
    """Data files and bytes of one day in the table's current snapshot (the catalog's scan plan)."""
    from datetime import date

    from movesmart_dagster.tables import scan

    iceberg = scan.load(load_settings(env), table)
    files = bytes_ = rows = 0
    epoch_day = (date.fromisoformat(day) - date(1970, 1, 1)).days
    snap = iceberg.current_snapshot() if iceberg is not None else None
    for task in iceberg.scan(snapshot_id=snap.snapshot_id).plan_files() if snap else []:
        if len(task.file.partition) and task.file.partition[0] == epoch_day:
            files += 1
            bytes_ += task.file.file_size_in_bytes
            rows += task.file.record_count
    return {"files": files, "bytes": bytes_, "rows": rows}


def busiest_day(env: dict[str, str], table: str) -> tuple[str, int]:
    from movesmart_dagster.tables import connect

    con = connect(load_settings(env))
    try:
        day, n = con.execute(
            f"SELECT event_date, count(*) FROM {table} GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return day.isoformat(), int(n)


def open_reader(env: dict[str, str], one_file: Path | None = None) -> tuple[object, float]:
    """A `movesmart query` connection (views pinned to each table's current snapshot) and the
    seconds its views took to register; `one_file`: plus a view `one_file` over that file, read
    the same way (read_parquet)."""
    from movesmart_dagster.tables import connect

    t0 = time.monotonic()
    con = connect(load_settings(env))
    register_s = time.monotonic() - t0
    if one_file is not None:
        path = str(one_file).replace("'", "''")
        con.execute(f"CREATE VIEW one_file AS SELECT * FROM read_parquet(['{path}'], union_by_name = true)")
    return con, register_s


def time_queries(readers: dict[str, tuple[object, str, float]], day: str, repeat: int) -> dict[str, dict]:
    """QUERY on each reader (name -> (connection, view, seconds to register)): one untimed run
    each, then `repeat` rounds, the readers interleaved in each round (the machine's load drifts
    between minutes; interleaved, every variant sees the same drift)."""
    answers, times = {}, {name: [] for name in readers}
    for name, (con, view, _) in readers.items():
        answers[name] = con.execute(QUERY.format(source=view, day=day)).fetchall()
    order = list(readers)
    for r in range(repeat):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            con, view, _ = readers[name]
            t0 = time.monotonic()
            con.execute(QUERY.format(source=view, day=day)).fetchall()
            times[name].append(time.monotonic() - t0)
    return {
        name: {
            "median_s": round(statistics.median(t), 4),
            "min_s": round(min(t), 4),
            "max_s": round(max(t), 4),
            "register_views_s": round(readers[name][2], 3),
            "answer": answers[name],
        }
        for name, t in times.items()
    }


def same_answer(a: list[tuple], b: list[tuple]) -> bool:
    """Equal rows; floating averages may differ in the last bits with the order of files."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        for va, vb in zip(ra, rb, strict=True):
            if isinstance(va, float) and isinstance(vb, float):
                if not math.isclose(va, vb, rel_tol=1e-9):
                    return False
            elif va != vb:
                return False
    return True


def offsets(env: dict[str, str], table: str, day: str) -> tuple[int, int]:
    """Rows and distinct Kafka offsets of the day, through the reader: compaction keeps both."""
    from movesmart_dagster.tables import connect

    con = connect(load_settings(env))
    try:
        n, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT (kafka_partition, kafka_offset)) FROM {table} "
            f"WHERE event_date = DATE '{day}'"
        ).fetchone()
    finally:
        con.close()
    return int(n), int(distinct)


def write_results(result: dict, write: bool) -> None:
    b, a, o = result["query"]["before"], result["query"]["after"], result["query"]["one_file"]
    pb, pa = result["partition"]["before"], result["partition"]["after"]
    after_ratio = a["median_s"] / o["median_s"]
    result["after_over_one_file"] = round(after_ratio, 2)
    result["before_over_one_file"] = round(b["median_s"] / o["median_s"], 2)
    verdict = "met" if after_ratio <= GOAL else "not met"
    job = result["job"]
    lines = [
        f"{result['events']:,} events written by the streaming job in {job['batches']} batches of at most "
        f"{result['batch_records']:,} records (`--available-now --max-offsets-per-trigger "
        f"{result['batch_records']}`, {job['seconds']} s); table `{result['table']}`, day {result['day']} "
        f"({pb['rows']:,} rows). `movesmart tables compact --table {result['table']} --day {result['day']}` "
        f"took {result['compact']['seconds']} s (whole process) and printed: `{result['compact']['output']}`.",
        f"Query (DuckDB, through the views of `movesmart query`; the three readers interleaved, median of "
        f"{result['repeat']} runs each after one untimed run; the reader before compaction keeps its views "
        f"pinned to the snapshot of the small files): `{QUERY.format(source=result['table'], day=result['day'])}`",
        machine_line(
            result, "before each step: " + ", ".join(f"{k} {v}" for k, v in result["load_1m"].items())
        ),
        "",
        "| day partition | files | bytes | mean file | query median, s | x one file | views registered, s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| before compaction | {pb['files']:,} | {pb['bytes']:,} | {pb['bytes'] // max(1, pb['files']):,} | "
        f"{b['median_s']} | {result['before_over_one_file']} | {b['register_views_s']} |",
        f"| after compaction | {pa['files']:,} | {pa['bytes']:,} | {pa['bytes'] // max(1, pa['files']):,} | "
        f"{a['median_s']} | {result['after_over_one_file']} | {a['register_views_s']} |",
        f"| the same rows in one Parquet file | 1 | {result['one_file_bytes']:,} | {result['one_file_bytes']:,} | "
        f"{o['median_s']} | 1.0 | |",
        "",
        f"Goal (issue 12): after <= {GOAL}x the one-file time: **{verdict}** (x{after_ratio:.2f}). "
        f"Rows and distinct Kafka offsets of the day before/after: {result['offsets']['before']} / "
        f"{result['offsets']['after']}; the three answers are equal: {result['answers_equal']}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not write:
        return
    for q in result["query"].values():
        q.pop("answer", None)
    write_result("compaction", result, text)
    chart(result)


def chart(result: dict) -> None:
    plt = pyplot()
    q, p = result["query"], result["partition"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["before\ncompaction", "after\ncompaction", "one Parquet\nfile"]
    files = [p["before"]["files"], p["after"]["files"], 1]
    a1.bar(names, files, color=["#999999", "#2b7bba", "#d5d8dc"])
    a1.set_yscale("log")
    a1.set_ylabel("data files in the day (log scale)")
    a1.set_title(f"{result['table']} {result['day']}: {p['before']['rows']:,} rows")
    for i, n in enumerate(files):
        a1.annotate(f"{n:,}", (i, n), ha="center", va="bottom")
    times = [q["before"]["median_s"], q["after"]["median_s"], q["one_file"]["median_s"]]
    a2.bar(names, times, color=["#999999", "#2b7bba", "#d5d8dc"])
    a2.axhline(GOAL * q["one_file"]["median_s"], color="#c0392b", linestyle="--", linewidth=1, label="goal")
    a2.set_ylabel("seconds, DuckDB aggregate over the day (median)")
    a2.set_title("Query through the `movesmart query` views")
    a2.legend()
    save_chart(fig, "compaction", chart_footer(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--batch-records", type=int, default=4000, help="records per micro-batch")
    ap.add_argument("--vehicles", type=int, default=100, help="simulated fleet (4 records per vehicle-tick)")
    ap.add_argument("--table", default="gps_data", choices=["gps_data"], help="the table queried")
    ap.add_argument("--repeat", type=int, default=15, help="timed runs of each query")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--quick", action="store_true", help="to iterate: 60,000 events; results not written")
    args = ap.parse_args()
    if args.quick:
        args.events = min(args.events, 60_000)

    home = Path(tempfile.mkdtemp(prefix="movesmart-bench-compaction-"))
    env = {
        **os.environ,
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
        "MOVESMART_SPARK_MASTER": "local[*]",
    }
    result: dict = {
        "machine": machine(),
        "commit": git_commit(),
        "events": args.events,
        "batch_records": args.batch_records,
        "table": args.table,
        "repeat": args.repeat,
        "load_1m": {},
    }

    def load_before(step: str) -> None:
        result["load_1m"][step] = load_1m()

    broker = KafkaBroker(load_settings(env), heap="1g")
    broker.up()
    try:
        log(f"producing {args.events:,} events from {START} ({args.vehicles} vehicles)")
        simulate(
            env,
            *("--vehicles", str(args.vehicles), "--seed", "7", "--rate", "0"),
            *("--max-events", str(args.events), "--start-time", START),
        )
        result["events"] = total = end_total(env)
        log(f"the streaming job, batches of at most {args.batch_records:,} records")
        load_before("stream")
        t0 = time.monotonic()
        proc = subprocess.run(
            [PY, "-m", "movesmart_dagster.streaming.job", "--available-now"]
            + ["--max-offsets-per-trigger", str(args.batch_records)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        (home / "stream.log").write_text(proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        batches = sum(1 for line in proc.stderr.splitlines() if " committed: " in line)
        result["job"] = {"seconds": round(time.monotonic() - t0, 1), "batches": batches, "records": total}
        log(f"  {result['job']}")

        day, _ = busiest_day(env, args.table)
        result["day"] = day
        before = partition_files(env, args.table, day)
        log(f"{args.table} {day} before: {before}")
        one_file = home / "one-file.parquet"
        from movesmart_dagster.tables import connect

        con = connect(load_settings(env))
        try:
            con.execute(
                f"COPY (SELECT * FROM {args.table} WHERE event_date = DATE '{day}') "
                f"TO '{one_file}' (FORMAT parquet, COMPRESSION zstd)"
            )
        finally:
            con.close()
        result["one_file_bytes"] = one_file.stat().st_size
        result["offsets"] = {"before": offsets(env, args.table, day)}
        # the reader of the table before compaction: its views stay pinned to the snapshot of
        # the small files (compaction commits a new snapshot; the old files stay until expiry)
        con_before, register_before = open_reader(env)

        log(f"movesmart tables compact --table {args.table} --day {day}")
        load_before("compact")
        t0 = time.monotonic()
        proc = subprocess.run(
            [PY, "-m", "movesmart_dagster.cli", "tables", "compact", "--table", args.table, "--day", day],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        compact_s = time.monotonic() - t0
        (home / "compact.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        result["compact"] = {"seconds": round(compact_s, 1), "output": proc.stdout.strip()}
        after = partition_files(env, args.table, day)
        log(f"{args.table} {day} after: {after} ({proc.stdout.strip()})")
        result["offsets"]["after"] = offsets(env, args.table, day)
        result["partition"] = {"before": before, "after": after}

        con_after, register_after = open_reader(env, one_file)
        load_before("queries")
        try:
            result["query"] = time_queries(
                {
                    "before": (con_before, args.table, register_before),
                    "after": (con_after, args.table, register_after),
                    "one_file": (con_after, "one_file", 0.0),
                },
                day,
                args.repeat,
            )
        finally:
            con_before.close()
            con_after.close()
        load_before("end")
        q = result["query"]
        result["answers_equal"] = all(
            same_answer(q["before"]["answer"], q[k]["answer"]) for k in ("after", "one_file")
        )
        if before["rows"] != after["rows"] or result["offsets"]["before"] != result["offsets"]["after"]:
            raise RuntimeError(f"compaction changed the rows: {before} -> {after}, {result['offsets']}")
        result["finished_at"] = finished_at()
        write_results(result, write=not args.quick)
        return 0 if result["answers_equal"] else 1
    finally:
        broker.down()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            log(f"kept {home}")


if __name__ == "__main__":
    sys.exit(main())
