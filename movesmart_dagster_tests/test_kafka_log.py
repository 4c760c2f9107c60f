"""librdkafka prints nothing of its own on a healthy broker; its warnings reach Python logging.

Issue 11: `%6|…|BGQUEUE| Purging 1 unserved events` and friends in the terminal. Each of our
clients — the simulator's producer and admin, the Dagster Kafka resource, the broker's
readiness probe — runs here against a real broker in a fresh process, whose stderr is read.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from movesmart_dagster.kafka_log import KAFKA_LOG, client_logging
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster_tests.conftest import Stack, stack_env

_RESOURCE_CALLS = """
import dagster as dg
from movesmart_dagster.defs.resources import KafkaResource
with dg.build_resources({"kafka": KafkaResource.from_env()}) as resources:
    for _ in range(3):
        resources.kafka.ensure_topics(["kafka-log-probe"])
        offsets = resources.kafka.end_offsets(["kafka-log-probe", "vehicle_data"])
print(sorted(offsets))
"""


def _librdkafka_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("%")]


def test_the_simulator_on_a_real_broker_prints_nothing_on_stderr(kafka_stack: Stack) -> None:
    from confluent_kafka import Producer

    # a broker fresh from start answers the first idempotent producer with a real, transient
    # warning (GETPID "Coordinator load in progress: retrying"): that one is meant to show
    warm = Producer(
        {**kafka_stack.settings.kafka_client_config(), "enable.idempotence": True, **client_logging()}
    )
    warm.produce("kafka-log-warmup", b"x")
    assert warm.flush(60) == 0
    done = subprocess.run(
        [sys.executable, "-m", "movesmart_dagster.cli", "simulate", "--max-events", "3000", "--no-progress"],
        env=kafka_stack.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _librdkafka_lines(done.stderr) == [] and done.stderr == "", done.stderr
    assert "3,000" in done.stdout or "3000" in done.stdout, done.stdout


def test_the_dagster_kafka_resource_prints_no_librdkafka_lines(kafka_stack: Stack) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _RESOURCE_CALLS],
        env=kafka_stack.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _librdkafka_lines(done.stderr) == [], done.stderr
    assert done.stdout.strip() == "['kafka-log-probe', 'vehicle_data']"


def test_stack_up_prints_no_librdkafka_lines_while_the_broker_starts(tmp_path) -> None:
    env = {**os.environ, **stack_env(tmp_path / "home")}
    try:
        up = subprocess.run(
            [sys.executable, "-m", "movesmart_dagster.cli", "stack", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert up.returncode == 0, up.stderr
        assert _librdkafka_lines(up.stderr) == [], up.stderr
    finally:
        subprocess.run([sys.executable, "-m", "movesmart_dagster.cli", "stack", "down"], env=env, timeout=120)


def test_warnings_still_reach_python_logging_and_info_is_not_asked_for(caplog) -> None:
    from confluent_kafka import Producer

    assert client_logging()["log_level"] == 4  # librdkafka emits warnings and errors only
    # a client pointed at nothing: its connection errors arrive as records of our logger
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", **client_logging()})
    with caplog.at_level(logging.WARNING, logger=KAFKA_LOG.name):
        producer.produce(TOPICS[0], b"x")
        for _ in range(30):
            producer.poll(0.1)
            if caplog.records:
                break
    assert caplog.records, "no librdkafka error reached Python logging"
    assert all(r.name == KAFKA_LOG.name and r.levelno >= logging.WARNING for r in caplog.records)
    assert any("Connection refused" in r.getMessage() for r in caplog.records)
    producer.purge()
    producer.flush(0)
