"""The real-time goals (issue 14, 1-5) from the results the benches of one `make bench` wrote.

Reads bench/results/{simulator,streaming,streaming_rates}.json, prints one table with each
goal's figure, its target and the verdict, the commit and the finish time of the run each
figure comes from, and writes it to bench/results/goals.md. It refuses to mix runs silently:
figures from different commits are flagged in the table.

    .venv/bin/python bench/goals.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import RESULTS  # noqa: E402

LATENCY_RATIO = 1.5  # goal 1: ours' p95 / the seed's p95, at most
CATCH_UP_RATIO = 2.0  # goal 2: ours / the seed's events/s, at least
FLOOR_SHARE = 0.6  # goal 2: ours / the floor job's events/s, at least
SIMULATOR_RATIO = 0.75  # goal 5: simulate / a raw produce loop, at least


def _load(name: str) -> Any:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def goals() -> tuple[list[tuple[str, str, str, str, str]], set[str]]:
    """(goal, figure, target, verdict, source) rows; the commits the figures come from."""
    rows: list[tuple[str, str, str, str, str]] = []
    commits: set[str] = set()
    streaming, rates, simulator = _load("streaming"), _load("streaming_rates"), _load("simulator")
    if streaming:
        source = f"streaming.json, {streaming['commit']}, {streaming['finished_at']}"
        commits.add(streaming["commit"])
        lat, c = streaming["latency"], streaming["catch_up"]
        p95 = lat["ours"]["p95_s"] / lat["seed"]["p95_s"]
        rows.append(
            (
                f"1. visibility p95 at {streaming['rate']:,} events/s, trigger {streaming['trigger']}",
                f"ours {lat['ours']['p95_s']} s / seed {lat['seed']['p95_s']} s = {p95:.2f}x",
                f"<= {LATENCY_RATIO}x",
                _verdict(p95 <= LATENCY_RATIO),
                source,
            )
        )
        ratio = c["ours"]["events_per_s"] / c["seed"]["events_per_s"]
        floor = c["ours"]["events_per_s"] / c["floor"]["events_per_s"] if c.get("floor") else None
        rows.append(
            (
                f"2. catch-up of {streaming['events']:,} events (every row visible)",
                f"ours {c['ours']['events_per_s']:,} / seed {c['seed']['events_per_s']:,} events/s = "
                f"{ratio:.2f}x; {floor:.0%} of the floor's {c['floor']['events_per_s']:,}"
                if floor is not None
                else f"{ratio:.2f}x",
                f">= {CATCH_UP_RATIO}x and >= {FLOOR_SHARE:.0%}",
                _verdict(ratio >= CATCH_UP_RATIO and floor is not None and floor >= FLOOR_SHARE),
                source,
            )
        )
        small = lat["ours"].get("batches") or {}
        phases = small.get("small_batch_phases_median_s") or {}
        rows.append(
            (
                "4. fixed cost: trigger to committed, ~100-record batch",
                f"{small.get('small_batch_median_s')} s (read {phases.get('read')} s, appends "
                f"{phases.get('commit')} s; {small.get('small_batches')} batches)",
                "reported",
                "reported",
                source,
            )
        )
    if rates:
        commits.add(rates["commit"])
        kept = rates["highest_rate_kept_up"]

        def said(rate: int | None) -> str:
            return f"{rate:,} events/s" if rate else f"none of {', '.join(f'{r:,}' for r in rates['rates'])}"

        rows.append(
            (
                f"3. highest rate within goal 1's budget ({rates['budget_p95_s']} s p95), lag not growing",
                f"ours {said(kept['ours'])}; seed {said(kept['seed'])}",
                "reported",
                "reported",
                f"streaming_rates.json, {rates['commit']}, {rates['finished_at']}",
            )
        )
    if simulator:
        last = simulator[-1]
        commits.add(last["commit"])
        rows.append(
            (
                f"5. simulator vs a raw produce loop, {last['events']:,} events",
                f"{last['median_simulate_events_per_s']:,} / {last['median_raw_events_per_s']:,} "
                f"events/s = {last['median_ratio']}x (median of {len(last['ratios'])} pairs)",
                f">= {SIMULATOR_RATIO}x",
                _verdict(last["median_ratio"] >= SIMULATOR_RATIO),
                f"simulator.json, {last['commit']}, {last['at'][:16].replace('T', ' ')} UTC",
            )
        )
    rows.sort(key=lambda r: r[0])
    return rows, commits


def main() -> int:
    rows, commits = goals()
    if not rows:
        print("no results in bench/results/: run `make bench` first", file=sys.stderr)
        return 1
    lines = [
        "# Real-time goals (issue 14), from the last `make bench`",
        "",
        "| goal | figure | target | verdict | from |",
        "|---|---|---|---|---|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    if len(commits) > 1:
        lines += ["", f"The figures come from runs at different commits: {', '.join(sorted(commits))}."]
    text = "\n".join(lines) + "\n"
    print(text)
    (RESULTS / "goals.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
