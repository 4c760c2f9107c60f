"""What every bench reports besides its own numbers: the machine, the load, the commit, and
the files written to bench/results (<name>.json, <name>.md, <name>.png).

Why shared: a result is only comparable with the machine and the load it ran under and the
commit it measured, so each bench states them the same way; the benches keep their own
tables and charts, this module keeps the footer and the writing.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def machine() -> dict[str, object]:
    """Cores, memory, CPU model, Python and the load average before the run."""
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
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


def load_1m() -> float:
    """The 1-minute load average now, rounded as every bench records it."""
    return round(os.getloadavg()[0], 2)


def git_commit(mark_dirty: bool = False) -> str | None:
    """The short hash of HEAD (with `+dirty` when asked and tracked files differ from it)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = ""
    if mark_dirty:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True
        )
        dirty = "+dirty" if status.stdout.strip() else ""
    return (out.stdout.strip() + dirty) or None


def finished_at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def machine_line(result: dict[str, Any], load: str) -> str:
    """The markdown's machine sentence; `load` says when the load was read, e.g.
    'at start 1.2, at end 3.4'."""
    m = result["machine"]
    return (
        f"Machine: {m['cores']} cores, {m['mem_gb']} GB RAM ({m['cpu']}); load (1 min) {load}; "
        f"{result['finished_at']}, commit {result.get('commit')}."
    )


def chart_footer(result: dict[str, Any]) -> str:
    """The chart's subtitle: machine, finish time, commit."""
    m = result["machine"]
    return f"{m['cores']} cores, {m['mem_gb']} GB RAM, {result['finished_at']}, commit {result.get('commit')}"


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend (benches run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_chart(fig: Any, name: str, footer: str, fontsize: int = 9) -> None:
    """bench/results/<name>.png with the footer as its subtitle."""
    fig.suptitle(footer, fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    pyplot().close(fig)


def write_result(name: str, result: dict[str, Any], markdown: str) -> None:
    """bench/results/<name>.json (the whole result) and <name>.md (the table)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)


def append_history(
    path: Path,
    rows: list[dict[str, Any]],
    indent: int = 2,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> None:
    """Rows appended to a JSON list of every recorded run (benches that keep their history);
    `keep` filters the rows already there."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    history = [r for r in history if keep is None or keep(r)] + rows
    path.write_text(json.dumps(history, indent=indent) + "\n")
