"""Benchmark: the periodic per-day check round with 30 days of history vs 1 day, same new data.

Why: the quality checks used to scan each table's whole history every 10 minutes, so their cost
grew with every day kept. Now a check belongs to one day and reads only that day's files (the
Iceberg scan plan prunes to the partition). Issue 13's goal: with 30 days of history the round
for the new day takes at most 1.2x its time with 1 day.

How: two warehouses (local catalogs) under a temporary home. Both get the same new day (one
simulated day's records through the data contract, in `--appends` appends per table, as a
stream's batches land). The second also gets 30 earlier days of the same shape (the same rows
shifted to each day, fresh ids). Then, interleaved, `--repeat` times each after one untimed run:

- the check round of the new day as the automation runs it: Dagster's implicit asset job with
  the per-day checks of all six tables, executed in process for that partition (the product path:
  resource, scan plan, DuckDB, check results in an ephemeral instance);
- the same rules alone over the new day's files (scan plan + DuckDB: the check op's own work);
- the same rules over the whole table (the former whole-history check: views over every file).

Results: bench/results/checks.{json,md,png}.

    .venv/bin/python bench/bench_checks.py [--records 20000] [--appends 12] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
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

GOAL = 1.2  # 30 days of history <= 1.2x one day (issue 13)
HISTORY_DAYS = 30
NEW_DAY = "2024-03-01"


def log(msg: str) -> None:
    print(f"[bench_checks] {msg}", flush=True)


def simulated_day(records: int) -> dict[str, object]:
    """One simulated day's valid rows per table (Arrow), as the streaming job would land them."""
    import pyarrow as pa

    from movesmart_dagster.contract import validate
    from movesmart_dagster.schemas import PARTITION_COLUMN, RECORDS_BY_TOPIC, arrow_table_schema
    from movesmart_dagster.simulator.fleet import SimConfig, iter_records

    start = datetime.fromisoformat(f"{NEW_DAY}T06:00:00+00:00")
    config = SimConfig(vehicles=20, seed=11, start_time=start, tick_seconds=20.0, max_events=records)
    rows: dict[str, list[dict]] = {}
    now = datetime.now(UTC)
    for offset, rec in enumerate(iter_records(config)):
        verdict = validate(RECORDS_BY_TOPIC[rec.topic], rec.value)
        if not verdict.valid:
            continue
        row = dict(verdict.row)
        row.update(
            kafka_topic=rec.topic,
            kafka_partition=0,
            kafka_offset=offset,
            kafka_timestamp=now,
            ingested_at=now,
            event_date=row["timestamp"].date(),
        )
        rows.setdefault(rec.topic, []).append(row)
    return {
        table: pa.Table.from_pylist(
            items, schema=arrow_table_schema(table).append(pa.field(PARTITION_COLUMN, pa.date32()))
        )
        for table, items in rows.items()
    }


def shifted(table: object, days: int, tag: str) -> object:
    """The same rows `days` earlier, with ids of their own."""
    import pyarrow as pa
    import pyarrow.compute as pc

    delta = pa.scalar(timedelta(days=days), pa.duration("us"))
    out = table.set_column(
        table.schema.get_field_index("timestamp"), "timestamp", pc.subtract(table["timestamp"], delta)
    )
    out = out.set_column(
        out.schema.get_field_index("event_date"),
        "event_date",
        pc.cast(pc.cast(out["timestamp"], pa.date32()), pa.date32()),
    )
    return out.set_column(
        out.schema.get_field_index("id"), "id", pc.binary_join_element_wise(tag, table["id"], "-")
    )


def fill(home: Path, day_rows: dict[str, object], history: int, appends: int) -> dict[str, int]:
    """A warehouse with `history` earlier days and the new day, each in `appends` appends per table."""
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.tables.catalog import ensure_tables, load_catalog, load_table

    settings = load_settings({"MOVESMART_HOME": str(home)})
    catalog = load_catalog(settings)
    ensure_tables(settings, catalog)
    counts = {"snapshots": 0, "rows": 0}
    for table, rows in day_rows.items():
        iceberg = load_table(settings, table, catalog)
        # appends as the streaming job's Spark writer makes them: Spark's append merges small
        # manifests (`commit.manifest-merge.enabled`, true by default in Iceberg's Spark writer),
        # pyiceberg's does only when told; without it 1,736 appends leave 1,736 manifests, a
        # history the stream never builds
        with iceberg.transaction() as tx:
            tx.set_properties({"commit.manifest-merge.enabled": "true"})
        iceberg = load_table(settings, table, catalog)
        for back in range(history, -1, -1):
            day = rows if back == 0 else shifted(rows, back, f"d{back}")
            step = -(-day.num_rows // appends)
            for i in range(0, day.num_rows, step):
                iceberg.append(day.slice(i, step))
                counts["snapshots"] += 1
            counts["rows"] += day.num_rows
    return counts


def check_round(home: Path):
    """The callable that runs the new day's check round, as the automation's run does."""
    os.environ["MOVESMART_HOME"] = str(home)
    import dagster as dg

    from movesmart_dagster.definitions import build_defs
    from movesmart_dagster.defs.checks.checks import day_checks_job, table_check_keys

    defs = build_defs()
    checks = table_check_keys(defs)
    job = day_checks_job(defs, checks)

    def run() -> int:
        with dg.instance_for_test() as instance:
            result = job.execute_in_process(
                partition_key=NEW_DAY,
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            )
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == len(checks) and all(e.passed for e in evaluations), evaluations
        return len(evaluations)

    return run


def rules_round(home: Path, day: str | None):
    """The rules alone, without Dagster: over the new day's files (`day`), as the check op does,
    or over every file of each table (None: the former whole-history round)."""
    from movesmart_dagster.defs.checks import quality
    from movesmart_dagster.schemas import TABLES
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.tables import connect

    settings = load_settings({"MOVESMART_HOME": str(home)})

    def run() -> int:
        con = connect(settings, day=day)
        try:
            results = [r for t in TABLES for r in quality.evaluate_table(con, t, day)]
            results.append(quality.evaluate_quarantine(con, settings.quarantine_max_share, day))
        finally:
            con.close()
        return len(results)

    return run


def write_results(result: dict) -> None:
    t = result["timings"]
    per_day = t["per_day_30d"]["median_s"] / t["per_day_1d"]["median_s"]
    whole = t["whole_30d"]["median_s"] / t["whole_1d"]["median_s"]
    rules = t["rules_30d"]["median_s"] / t["rules_1d"]["median_s"]
    result["rules_30d_over_1d"] = round(rules, 2)
    result["per_day_30d_over_1d"] = round(per_day, 2)
    result["whole_30d_over_1d"] = round(whole, 2)
    verdict = "met" if per_day <= GOAL else "not met"
    lines = [
        f"New day {NEW_DAY}: {result['day_rows']:,} rows over the five tables (one simulated day through the "
        f"data contract), in {result['appends']} appends per table; the 30-day warehouse holds "
        f"{result['history']['rows']:,} rows in {result['history']['snapshots']:,} appends. Each timing: median of "
        f"{result['repeat']} runs after one untimed run, the six interleaved.",
        machine_line(
            result, f"at start {result['machine']['load_1m_before']}, at end {result['load_1m_end']}"
        ),
        "",
        "| round | 1 day of history, s | 30 days, s | 30 d / 1 d |",
        "|---|---:|---:|---:|",
        f"| per-day checks of the new day (the automation's run: Dagster in process, {result['checks']} checks) | "
        f"{t['per_day_1d']['median_s']} | {t['per_day_30d']['median_s']} | {per_day:.2f} |",
        f"| the same rules alone over the new day's files (scan plan + DuckDB, no Dagster) | "
        f"{t['rules_1d']['median_s']} | {t['rules_30d']['median_s']} | {rules:.2f} |",
        f"| the same rules over the whole tables (the former 10-minute round) | {t['whole_1d']['median_s']} | "
        f"{t['whole_30d']['median_s']} | {whole:.2f} |",
        "",
        f"Goal (issue 13): per-day round with 30 days <= {GOAL}x with 1 day: **{verdict}** (x{per_day:.2f}).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_result("checks", result, text)
    chart(result)


def chart(result: dict) -> None:
    plt = pyplot()
    t = result["timings"]
    fig, ax = plt.subplots(figsize=(7, 4))
    x = [0, 1]
    width = 0.35
    ax.bar(
        [i - width / 2 for i in x],
        [t["per_day_1d"]["median_s"], t["per_day_30d"]["median_s"]],
        width,
        label="per-day checks (now)",
        color="#2b7bba",
    )
    ax.bar(
        [i + width / 2 for i in x],
        [t["whole_1d"]["median_s"], t["whole_30d"]["median_s"]],
        width,
        label="whole-table rules (before)",
        color="#999999",
    )
    ax.set_xticks(x, ["1 day of history", f"{HISTORY_DAYS} days of history"])
    ax.set_ylabel("seconds per round (median)")
    ax.set_title(
        f"Check round for one new day (x{result['per_day_30d_over_1d']} vs x{result['whole_30d_over_1d']})"
    )
    ax.legend()
    save_chart(fig, "checks", chart_footer(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20_000, help="simulated records of the new day")
    ap.add_argument("--appends", type=int, default=12, help="appends per table and day")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # Dagster's preview/supersession notes, once per definitions load
    started = time.monotonic()
    info = machine()
    day_rows = simulated_day(args.records)
    with tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp:
        homes = {"1d": Path(tmp) / "one-day", "30d": Path(tmp) / "thirty-days"}
        fill(homes["1d"], day_rows, 0, args.appends)
        log(f"1-day warehouse written ({time.monotonic() - started:.0f}s)")
        history = fill(homes["30d"], day_rows, HISTORY_DAYS, args.appends)
        log(
            f"{HISTORY_DAYS}-day warehouse written: {history['snapshots']} appends ({time.monotonic() - started:.0f}s)"
        )
        rounds = {}
        for name, home in homes.items():
            rounds[f"per_day_{name}"] = check_round(home)
            rounds[f"rules_{name}"] = rules_round(home, NEW_DAY)
            rounds[f"whole_{name}"] = rules_round(home, None)
        samples: dict[str, list[float]] = {k: [] for k in rounds}
        checks = 0
        for i in range(args.repeat + 1):
            for key, fn in rounds.items():
                if key.startswith("per_day"):
                    os.environ["MOVESMART_HOME"] = str(homes[key.rsplit("_", 1)[1]])
                started_round = time.perf_counter()
                n = fn()
                took = time.perf_counter() - started_round
                checks = n if key.startswith("per_day") else checks
                if i:  # the first of each is untimed (imports, caches)
                    samples[key].append(took)
            log(
                f"round {i}/{args.repeat}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in samples.items() if v)
            )
    result = {
        "machine": info,
        "records": args.records,
        "day_rows": sum(t.num_rows for t in day_rows.values()),
        "appends": args.appends,
        "repeat": args.repeat,
        "history": history,
        "checks": checks,
        "timings": {
            k: {"median_s": round(statistics.median(v), 3), "samples_s": [round(x, 3) for x in v]}
            for k, v in samples.items()
        },
        "load_1m_end": load_1m(),
        "finished_at": finished_at(),
        "commit": git_commit(),
    }
    write_results(result)
    log(f"done in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
