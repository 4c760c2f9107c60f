"""Benchmark: `movesmart simulate --rate 0`, whole process, against a raw produce loop.

Why a raw loop beside it: an absolute events/s figure says little on a shared 2-core
machine whose load swings between runs. The yardstick is the best a Python program can do
with the same client: a plain confluent-kafka loop in its own process, sending the very
records the simulator sends (same topics, keys, values, pre-encoded before the clock
starts) with exactly the simulator's producer settings (`run_producer_config`, one
source). The two run interleaved (simulator, raw, simulator, raw, ...) against one broker,
the 1-minute load average is recorded before each run, and the headline is the median of
the per-pair ratios simulator / raw.

Both clocks are whole-process: from spawning the process until it exits, every record
acknowledged (interpreter start, imports, broker check, produce, final flush). The raw
process additionally has to read its pre-encoded records from a file; that time (which the
simulator has no counterpart for) is measured inside it and subtracted. Its in-loop rate
(first produce -> flush done) is printed too, as the stricter yardstick. After each run the
topics' end offsets must have grown by exactly N, so neither side can win by losing records.

The script starts its own broker on free loopback ports under a temporary home, so it
never touches a developer's stack, and always stops it. It writes
bench/results/simulator.json (appends a row), simulator.md (this run's table) and
simulator.png (this run's chart).

    .venv/bin/python bench/bench_simulator.py [--events 1000000] [--vehicles 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import REPO, RESULTS, append_history, git_commit, machine, pyplot, save_chart

GOAL_RATIO = 0.75


def raw_loop(records_file: str, conf_file: str) -> int:
    """The yardstick, run as its own process: only confluent-kafka, no movesmart import."""
    t0 = time.monotonic()
    with open(records_file, "rb") as fh:
        records = marshal.load(fh)
    conf = json.loads(Path(conf_file).read_text())
    load_s = time.monotonic() - t0
    from confluent_kafka import Producer

    failed = 0

    def on_delivery(err: Any, _msg: Any) -> None:  # only failures, as in the simulator
        nonlocal failed
        if err is not None:
            failed += 1

    producer = Producer({**conf, "on_delivery": on_delivery})
    produce, poll = producer.produce, producer.poll
    started = time.monotonic()
    for topic, key, value in records:
        try:
            produce(topic, value, key)
        except BufferError:  # local queue full: serve the client until there is room
            while True:
                poll(0.05)
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    continue
    remaining = producer.flush(600)
    loop_s = time.monotonic() - started
    print(
        json.dumps({"load_s": load_s, "loop_s": loop_s, "sent": len(records), "failed": failed + remaining})
    )
    return 0 if failed + remaining == 0 else 3


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _end_offsets(bootstrap: str, topics: tuple[str, ...]) -> int:
    """Sum of the high watermarks of `topics`: how many records the broker holds."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                md = consumer.list_topics(timeout=30)
                return sum(
                    consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
                    for t in topics
                    for p in md.topics[t].partitions
                )
            except KafkaException:  # new topics: partition leaders still being elected
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def _chart(row: dict) -> None:
    plt = pyplot()
    runs = row["runs"]
    pairs = len(runs) // 2
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(pairs)
    sim = [r["events_per_s"] for r in runs if r["kind"] == "simulate"]
    raw = [r["events_per_s"] for r in runs if r["kind"] == "raw"]
    ax.bar([i - 0.2 for i in x], sim, 0.4, label="movesmart simulate (whole process)", color="#2b7bba")
    ax.bar([i + 0.2 for i in x], raw, 0.4, label="raw confluent-kafka loop (whole process)", color="#999999")
    for i in x:
        ax.text(i, max(sim[i], raw[i]) * 1.02, f"{sim[i] / raw[i]:.2f}x", ha="center", fontsize=9)
    ax.set_xticks(
        list(x),
        [
            f"pair {i + 1}\nload {runs[2 * i]['load_1m_before']:.1f}/{runs[2 * i + 1]['load_1m_before']:.1f}"
            for i in x
        ],
    )
    ax.set_ylabel("messages / s")
    ax.set_ylim(0, max(sim + raw) * 1.35)
    ax.set_title(
        f"{row['events']:,} records, {row['vehicles']} vehicles: median ratio {row['median_ratio']:.2f}x "
        f"(goal {GOAL_RATIO}x)",
        fontsize=10,
    )
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    m = row["machine"]
    save_chart(
        fig, "simulator", f"{m['cores']} cores, {m['mem_gb']} GB RAM, shared; commit {row['commit']}", 8
    )


def _table(row: dict) -> str:
    lines = [
        f"# Simulator vs raw produce loop ({row['at']}, commit {row['commit']})",
        "",
        f"{row['events']:,} records, {row['vehicles']} vehicles, routes {row['routes']}; "
        f"{row['machine']['cores']} cores, {row['machine']['mem_gb']} GB, shared with other work.",
        "",
        "| run | process | load 1m before | wall s | messages/s | CPU us/record | raw in-loop msg/s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(row["runs"], 1):
        inloop = f"{r['in_loop_events_per_s']:,.0f}" if r["kind"] == "raw" else ""
        lines.append(
            f"| {i} | {r['kind']} | {r['load_1m_before']:.2f} | {r['wall_s']:.2f} | {r['events_per_s']:,.0f} "
            f"| {r['cpu_us_per_record']:.2f} | {inloop} |"
        )
    lines += [
        "",
        f"Per-pair ratio simulate / raw (whole process): {', '.join(f'{x:.2f}' for x in row['ratios'])}; "
        f"**median {row['median_ratio']:.2f}x** (goal >= {GOAL_RATIO}x).",
        f"Against the raw loop's in-loop rate (stricter): median {row['median_ratio_in_loop']:.2f}x.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--routes", default="all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="pairs of (simulate, raw) runs")
    ap.add_argument("--no-record", action="store_true", help="write nothing to bench/results/")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from movesmart_dagster.schemas import TOPICS
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.simulator import SimConfig, iter_records
    from movesmart_dagster.simulator.producer import ensure_topics, run_producer_config
    from movesmart_dagster.stack.kafka_broker import KafkaBroker
    from movesmart_dagster.stack.processes import free_port

    home = Path(tempfile.mkdtemp(prefix="movesmart-bench-"))
    env = {
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
    }
    settings = load_settings(env)
    # the raw loop's settings: the simulator's own, minus the Python logger object
    conf = {k: v for k, v in run_producer_config(settings).items() if k != "logger"}
    config = SimConfig(vehicles=args.vehicles, seed=args.seed, routes=(args.routes,), max_events=args.events)
    records_file = home / "records.marshal"
    with records_file.open("wb") as fh:
        marshal.dump([(t, k, v) for t, k, v, _ in iter_records(config)], fh)
    sim_cmd = [
        sys.executable,
        "-m",
        "movesmart_dagster.cli",
        "simulate",
        "--rate",
        "0",
        "--max-events",
        str(args.events),
        "--vehicles",
        str(args.vehicles),
        "--routes",
        args.routes,
        "--seed",
        str(args.seed),
        "--no-progress",
    ]
    conf_file = home / "producer.json"
    conf_file.write_text(json.dumps(conf))
    raw_cmd = [sys.executable, str(Path(__file__).resolve()), "--raw-loop", str(records_file), str(conf_file)]
    broker = KafkaBroker(settings, heap="1g")
    runs: list[dict[str, Any]] = []
    try:
        broker.up()
        ensure_topics(settings)
        for i in range(args.repeat):
            for kind in ("simulate", "raw"):
                before = _end_offsets(settings.kafka_bootstrap_servers, TOPICS)
                load = os.getloadavg()[0]
                summary_file = home / f"summary-{i}.json"
                cmd = [*sim_cmd, "--summary-json", str(summary_file)] if kind == "simulate" else raw_cmd
                cpu_before = _children_cpu_s()
                started = time.monotonic()
                proc = subprocess.run(
                    cmd, env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True
                )
                wall = time.monotonic() - started
                cpu = _children_cpu_s() - cpu_before
                if proc.returncode != 0:
                    print(
                        f"{kind} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}",
                        file=sys.stderr,
                    )
                    return 1
                added = _end_offsets(settings.kafka_bootstrap_servers, TOPICS) - before
                if added != args.events:
                    print(
                        f"{kind}: the broker got {added:,} records, expected {args.events:,}", file=sys.stderr
                    )
                    return 1
                # CPU time (user + sys, all threads) per record: a cost that the load does not skew
                run: dict[str, Any] = {
                    "kind": kind,
                    "load_1m_before": round(load, 2),
                    "cpu_us_per_record": cpu / args.events * 1e6,
                }
                if kind == "simulate":
                    summary = json.loads(summary_file.read_text())
                    assert summary["total"] == args.events and summary["failed_total"] == 0, summary
                    run.update(wall_s=wall, in_process_events_per_s=summary["events_per_s"])
                else:
                    out = json.loads(proc.stdout)
                    run.update(
                        wall_s=wall - out["load_s"],
                        read_records_s=out["load_s"],
                        in_loop_events_per_s=args.events / out["loop_s"],
                    )
                run["events_per_s"] = args.events / run["wall_s"]
                runs.append({k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()})
                print(
                    f"pair {i + 1} {kind:<8} load {load:5.2f}  {run['wall_s']:6.2f}s  "
                    f"{run['events_per_s']:>9,.0f} msg/s  cpu {run['cpu_us_per_record']:.2f} us/record"
                    + (f"  (in-loop {run['in_loop_events_per_s']:,.0f}/s)" if kind == "raw" else ""),
                    flush=True,
                )
    finally:
        broker.down()
        shutil.rmtree(home, ignore_errors=True)

    sims = [r for r in runs if r["kind"] == "simulate"]
    raws = [r for r in runs if r["kind"] == "raw"]
    ratios = [s["events_per_s"] / r["events_per_s"] for s, r in zip(sims, raws, strict=True)]
    ratios_in_loop = [s["events_per_s"] / r["in_loop_events_per_s"] for s, r in zip(sims, raws, strict=True)]
    row = {
        "benchmark": "simulator_vs_raw_loop",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(mark_dirty=True),
        "events": args.events,
        "vehicles": args.vehicles,
        "routes": args.routes,
        "producer_settings": {k: v for k, v in conf.items() if "password" not in k and "secret" not in k},
        "median_simulate_events_per_s": round(statistics.median(s["events_per_s"] for s in sims)),
        "median_raw_events_per_s": round(statistics.median(r["events_per_s"] for r in raws)),
        "ratios": [round(x, 3) for x in ratios],
        "median_ratio": round(statistics.median(ratios), 3),
        "median_ratio_in_loop": round(statistics.median(ratios_in_loop), 3),
        "goal_ratio": GOAL_RATIO,
        "runs": runs,
        "machine": machine(),
    }
    print(
        f"median: simulate {row['median_simulate_events_per_s']:,} msg/s, raw loop "
        f"{row['median_raw_events_per_s']:,} msg/s; ratio {row['median_ratio']:.2f}x "
        f"(per pair {', '.join(f'{x:.2f}' for x in ratios)}; vs raw in-loop {row['median_ratio_in_loop']:.2f}x); "
        f"goal >= {GOAL_RATIO}x: {'met' if row['median_ratio'] >= GOAL_RATIO else 'NOT met'}"
    )
    if not args.no_record:
        # older rows had no yardstick
        append_history(
            RESULTS / "simulator.json", [row], keep=lambda r: r.get("benchmark") == row["benchmark"]
        )
        (RESULTS / "simulator.md").write_text(_table(row))
        _chart(row)
        print(f"recorded in {RESULTS.relative_to(REPO)}/simulator.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--raw-loop":
        sys.exit(raw_loop(sys.argv[2], sys.argv[3]))
    sys.exit(main())
