"""The compose stack's Spark cluster, started here the way its containers start it.

docker-compose.yml runs the Spark master and workers from the movesmart/dagster image with
pyspark's own `spark-class` (no Spark image of their own, so the cluster's Spark equals the
driver's). No Docker engine runs here, but the same launcher is in this virtualenv: the test
starts a master and a worker with the commands of docker-compose.yml (hosts, ports and the work
directory moved to loopback and a temporary folder), runs the real streaming job against
`spark://` in client mode — executors get the Kafka source, Iceberg and the fast-path UDF only
through `spark.jars`, the driver commits to the catalog — and checks every Kafka offset is one
row. Everything binds 127.0.0.1 (SPARK_LOCAL_IP also moves the web UIs off 0.0.0.0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from movesmart_dagster.schemas import QUARANTINE_TABLE, TABLES, TOPICS
from movesmart_dagster.settings import REPO_ROOT, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port
from movesmart_dagster.streaming.commits import BATCH_ID_PROPERTY
from movesmart_dagster.tables.catalog import load_table
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_deploy import read_env_file
from movesmart_dagster_tests.test_streaming_support import check_exact, run_cli, simulate

LOOPBACK = "127.0.0.1"


def _compose_command(service: str) -> list[str]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


def _replace(command: list[str], option: str, value: str) -> None:
    command[command.index(option) + 1] = value


def _cluster_status(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and one worker (1 core, 1 GiB) from the compose commands; the master URL."""
    scratch = tmp_path_factory.mktemp("spark-cluster")
    launcher = str(Path(sys.executable).parent / "spark-class")  # on the image's PATH
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://{LOOPBACK}:{port}"

    master = _compose_command("spark-master")
    assert master[0] == "spark-class"
    _replace(master, "--host", LOOPBACK)
    _replace(master, "--port", str(port))
    _replace(master, "--webui-port", str(ui_port))
    worker = _compose_command("spark-worker-1")
    assert worker[0] == "spark-class" and "spark://spark-master:7077" in worker
    worker[worker.index("spark://spark-master:7077")] = master_url
    _replace(worker, "--webui-port", str(worker_ui))
    _replace(worker, "--work-dir", str(scratch / "work"))
    worker += ["--host", LOOPBACK, "--cores", "1", "--memory", "1g"]

    env = {
        **os.environ,
        **read_env_file(REPO_ROOT / "deploy" / "spark.env"),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_LOG_DIR": str(scratch / "logs"),
        # spark-class finds SPARK_HOME with the `python3` on the PATH: in the image, the one pyspark
        # is installed in; here, this virtualenv's
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    processes: list[subprocess.Popen] = []
    try:
        for name, command in (("master", master), ("worker", worker)):
            log = (scratch / f"{name}.out").open("wb")
            processes.append(
                subprocess.Popen(
                    [launcher, *command[1:]],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            if name == "master":
                deadline = time.monotonic() + 120
                while True:
                    assert processes[0].poll() is None, (scratch / "master.out").read_text()[-3000:]
                    try:
                        _cluster_status(ui_port)
                        break
                    except OSError:
                        assert time.monotonic() < deadline, "the master's UI never answered"
                        time.sleep(0.5)
        deadline = time.monotonic() + 120
        while _cluster_status(ui_port).get("aliveworkers", 0) < 1:
            assert processes[1].poll() is None, (scratch / "worker.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.5)
        yield master_url
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def test_the_streaming_job_runs_on_the_compose_spark_cluster(
    spark_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = stack_env(
        tmp_path_factory.mktemp("cluster-home"),
        MOVESMART_SPARK_MASTER=spark_cluster,
        MOVESMART_SPARK_DRIVER_MEMORY="1g",
        SPARK_LOCAL_IP=LOOPBACK,  # the executors reach the driver on loopback
    )
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        summary = simulate(
            env, "--vehicles", "2", "--seed", "11", "--max-events", "2000", "--bad-ratio", "0.05"
        )
        run = run_cli(env, "stream", "--available-now")
        assert run.returncode == 0, run.stderr[-4000:]
        counts = check_exact(settings)
        assert sum(g + b for g, b in counts.values()) == summary["delivered"] == 2000
        assert sum(b for _, b in counts.values()) == summary["malformed"]
        # committed through the catalog by the driver, each append marked with its batch
        tables = [t for t, topic in zip(TABLES, TOPICS, strict=True) if counts[topic][0]] + [QUARANTINE_TABLE]
        assert len(tables) >= 5, counts
        for table in tables:
            snapshot = load_table(settings, table).current_snapshot()
            assert snapshot is not None and BATCH_ID_PROPERTY in snapshot.summary.additional_properties
    finally:
        broker.down()
