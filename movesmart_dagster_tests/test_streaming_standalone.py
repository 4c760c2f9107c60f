"""A Spark standalone cluster (master + worker from the pyspark installation) runs the job.

No code change: the same `movesmart_dagster/streaming/job.py`, launched by `spark-submit`
with `--master spark://…` and the connector jars through `--jars` (spark.jars), which the
worker's executor fetches from the driver. All processes bind to 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest

from movesmart_dagster.settings import load_settings
from movesmart_dagster.spark_session import spark_conf
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port, spawn_group, stop_group, wait_for_port
from movesmart_dagster.streaming.source import JOB_SPARK_CONF
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_streaming_support import REPO, check_exact, simulate

SPARK_HOME = Path(pyspark.__file__).parent


def _daemon(main: str, args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return spawn_group(["java", "-Xmx512m", "-cp", f"{SPARK_HOME}/jars/*", main, *args], log, env=env)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("spark-cluster")
    # pip's pyspark lacks the RELEASE marker by which the worker's launcher finds `jars/`;
    # a home of links to the installation (plus the marker) serves the daemons
    home = base / "spark-home"
    home.mkdir()
    for name in ("jars", "bin", "python"):
        (home / name).symlink_to(SPARK_HOME / name)
    (home / "RELEASE").write_text(f"Spark {pyspark.__version__} (pip installation)\n")
    port, ui, worker_ui = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_SCALA_VERSION": "2.13",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    master = _daemon(
        "org.apache.spark.deploy.master.Master",
        ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
        base / "master.log",
        env,
    )
    worker = None
    try:
        assert wait_for_port(port, 60, alive=lambda: master.poll() is None), (base / "master.log").read_text()
        url = f"spark://127.0.0.1:{port}"
        work = base / "work"
        worker = _daemon(
            "org.apache.spark.deploy.worker.Worker",
            [
                url,
                "--cores",
                "1",
                "--memory",
                "1g",
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(worker_ui),
                "--work-dir",
                str(work),
            ],
            base / "worker.log",
            env,
        )
        assert wait_for_port(worker_ui, 60, alive=lambda: worker.poll() is None), (
            base / "worker.log"
        ).read_text()
        yield url, work
    finally:
        for proc in (worker, master):
            if proc is not None and proc.poll() is None:
                stop_group(proc, timeout=20)


def test_spark_submit_on_standalone_cluster_is_exact(cluster: tuple[str, Path], tmp_path: Path) -> None:
    url, work = cluster
    env = stack_env(tmp_path / "home", MOVESMART_SPARK_MASTER=url, MOVESMART_SPARK_DRIVER_MEMORY="1g")
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        summary = simulate(
            env, "--vehicles", "2", "--seed", "9", "--max-events", "2000", "--bad-ratio", "0.05"
        )
        conf = {**spark_conf(settings, "movesmart-stream"), **JOB_SPARK_CONF}
        cmd = [
            str(SPARK_HOME / "bin" / "spark-submit"),
            "--master",
            conf.pop("spark.master"),
            "--jars",
            conf.pop("spark.jars"),
        ]
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd += ["movesmart_dagster/streaming/job.py", "--available-now"]
        run = subprocess.run(
            cmd,
            env={
                **os.environ,
                **env,
                "SPARK_HOME": str(SPARK_HOME),
                "PYSPARK_PYTHON": sys.executable,
                "PYSPARK_DRIVER_PYTHON": sys.executable,
            },
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            start_new_session=True,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        counts = check_exact(settings)
        assert sum(g + b for g, b in counts.values()) == summary["delivered"] == 2000
        # the work ran in the worker's executor, which fetched the connector jars from the driver
        executor_logs = list(work.glob("app-*/*/stderr"))
        assert executor_logs, "no executor ran on the worker"
        assert any(work.glob("app-*/*/spark-sql-kafka-0-10_*.jar"))
    finally:
        broker.down()
