"""`make setup` says what it does and how long each step took, in plain text.

Issue 11: setup printed nothing for ~3.5 minutes (pip -q), and Debian's Maven 3.8 wrote
`ESC[0m` resets into the output. The Maven step runs here for real through `make`, into a
temporary jars folder (`JARS_DIR`), so the worktree's jars are not touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# the shape of `pip install` output (pip 25, stdout not a terminal), trimmed
_PIP_OUTPUT = (
    "Looking in links: /opt/wheels\n"
    "Obtaining file:///work/repo\n"
    "  Installing build dependencies: started\n"
    + "".join(
        f"Collecting pkg{i}==1.0 (from movesmart-dagster==0.1.0)\n"
        f"  Downloading pkg{i}-1.0-py3-none-any.whl ({'1.5 MB' if i else '434.1 MB'})\n"
        for i in range(30)
    )
    + "Requirement already satisfied: setuptools in ./.venv/lib/python3.11/site-packages\n"
    "Building wheels for collected packages: movesmart-dagster\n"
    "  Building editable for movesmart-dagster (pyproject.toml): started\n"
    "Successfully built movesmart-dagster\n"
    "Installing collected packages: pkg0, pkg1, pkg2\n"
    "Successfully installed pkg0-1.0 pkg1-1.0 pkg2-1.0\n"
)


def test_pip_output_becomes_a_few_progress_lines() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "pip_progress.py")],
        input=_PIP_OUTPUT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    lines = [re.sub(r"^  \[\s*\d+ s\] ", "", line) for line in done.stdout.splitlines()]
    assert lines == [
        "downloading pkg0-1.0-py3-none-any.whl (434 MB)",
        "resolved 25 packages, downloaded 469 MB",
        "resolved 31 packages (478 MB downloaded); building movesmart-dagster",
        "installing 3 packages into .venv",
        "installed 3 packages",
    ]


def test_make_jars_announces_and_times_the_step_without_escape_codes(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    done = subprocess.run(
        ["make", "--no-print-directory", "jars", f"JARS_DIR={jars}"],
        cwd=REPO,
        env={**os.environ, "TERM": "xterm-256color"},  # what a terminal would say
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert "\x1b" not in output, repr(output)
    assert (
        output.splitlines()[0] == "setup: Maven jars (Kafka broker, Spark connectors, our contract UDF) ..."
    )
    assert re.fullmatch(r"setup: Maven jars done in \d+ s", output.splitlines()[-1]), output
    assert (jars / ".resolved").is_file()
    assert (
        any((jars / "kafka").glob("kafka_2.13-*.jar"))
        and (jars / "spark" / "movesmart-spark-contract.jar").is_file()
    )


def _make_dry_run(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_make_dev_passes_simulator_0_on_and_backfill_its_range() -> None:
    assert _make_dry_run("dev", "SIMULATOR=0").endswith("-m movesmart_dagster.dev --no-simulator")
    assert _make_dry_run("dev").endswith("-m movesmart_dagster.dev")
    assert _make_dry_run("backfill", "START=2024-02-01", "END=2024-02-03").endswith(
        "movesmart backfill --start 2024-02-01 --end 2024-02-03"
    )
