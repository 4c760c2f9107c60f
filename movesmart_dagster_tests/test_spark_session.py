"""The driver JVM's stderr reaches ours without the JVM's harmless start-up line, with the rest.

A real driver in a fresh process (one JVM per process): what it prints on the JVM's stderr — a
line of its own here, standing for a Spark warning — arrives on the process's stderr; the
"Using incubator modules" notice every Spark 4 driver prints at start does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from movesmart_dagster.settings import REPO_ROOT
from movesmart_dagster.spark_session import HARMLESS_JVM_STDERR

_DRIVER = """
from movesmart_dagster.settings import load_settings
from movesmart_dagster.spark_session import build_spark
spark = build_spark(load_settings(), "stderr-check")
spark.sparkContext._jvm.java.lang.System.err.println("a line the JVM printed on its stderr")
assert spark.range(3).count() == 3
spark.stop()
"""


def test_the_jvm_stderr_passes_without_its_start_up_notice(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        env={**os.environ, "MOVESMART_HOME": str(tmp_path / "home")},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "a line the JVM printed on its stderr" in proc.stderr.splitlines()
    assert not set(proc.stderr.splitlines()) & HARMLESS_JVM_STDERR, proc.stderr
    assert "incubator" not in proc.stderr
