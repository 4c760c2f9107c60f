"""The local stack against a real broker: durability, idempotence, clear errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.settings import SettingsError, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster_tests.conftest import stack_env

MOVESMART = [sys.executable, "-m", "movesmart_dagster.cli"]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MOVESMART, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=180
    )


def _broker_pids(home: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"{home}/kafka/server.properties"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            **client_logging(),
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    values: list[bytes] = []
    idle = 0
    while len(values) < expected and idle < 20:
        batch = consumer.consume(num_messages=5000, timeout=1.0)
        idle = idle + 1 if not batch else 0
        values.extend(m.value() for m in batch if m.error() is None)
    consumer.close()
    return values


def test_up_produce_consume_down_up_keeps_data(tmp_path):
    env = stack_env(tmp_path / "home")
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        first = _cli(env, "stack", "up")
        assert first.returncode == 0, first.stderr
        assert f"bootstrap={bootstrap}" in first.stdout

        topic = "durability_check"
        admin = AdminClient({"bootstrap.servers": bootstrap, **client_logging()})
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
        producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5, **client_logging()}
        )
        sent = [f"message-{i}".encode() for i in range(10_000)]
        for i, value in enumerate(sent):
            producer.produce(topic, value=value, key=str(i % 17))
            if i % 1000 == 0:
                producer.poll(0)
        assert producer.flush(30) == 0
        assert sorted(_consume_all(bootstrap, topic, len(sent))) == sorted(sent)

        down = _cli(env, "stack", "down")
        assert down.returncode == 0 and "stopped" in down.stdout
        assert _broker_pids(env["MOVESMART_HOME"]) == []
        status = _cli(env, "stack", "status")
        assert "kafka   stopped" in status.stdout

        assert _cli(env, "stack", "up").returncode == 0
        assert sorted(_consume_all(bootstrap, topic, len(sent))) == sorted(sent)
    finally:
        _cli(env, "stack", "down")


def test_up_twice_leaves_one_broker_and_down_twice_is_fine(tmp_path):
    env = stack_env(tmp_path / "home")
    try:
        a = _cli(env, "stack", "up")
        b = _cli(env, "stack", "up")
        assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
        pids = _broker_pids(env["MOVESMART_HOME"])
        assert len(pids) == 1
        # the broker holds its whole heap (MOVESMART_KAFKA_HEAP) from the start: no creeping footprint
        status = Path(f"/proc/{pids[0]}/status").read_text()
        rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS"))
        assert rss >= 512 * 2**20, rss
        assert f"pid={pids[0]}" in a.stdout and f"pid={pids[0]}" in b.stdout
        status = _cli(env, "stack", "status")
        assert f"kafka   running pid={pids[0]}" in status.stdout
    finally:
        assert _cli(env, "stack", "down").returncode == 0
    again = _cli(env, "stack", "down")
    assert again.returncode == 0 and "was not running" in again.stdout


def test_retention_of_the_broker_and_of_the_topics_dagster_creates(tmp_path, monkeypatch):
    """MOVESMART_KAFKA_RETENTION_HOURS bounds Kafka's disk: the local broker's default (topics the
    simulator creates) and the topics the Dagster resource creates keep records that long."""
    from confluent_kafka.admin import ConfigResource

    from movesmart_dagster.defs.resources import KafkaResource

    env = stack_env(tmp_path / "home", MOVESMART_KAFKA_RETENTION_HOURS="5")
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        assert _cli(env, "stack", "up").returncode == 0
        admin = AdminClient({"bootstrap.servers": bootstrap, **client_logging()})
        broker = ConfigResource(ConfigResource.Type.BROKER, "1")
        config = admin.describe_configs([broker])[broker].result(30)
        assert config["log.retention.hours"].value == "5"
        assert config["log.roll.hours"].value == "24"
        admin.create_topics([NewTopic("simulator_like", 3, 1)])["simulator_like"].result(30)
        assert KafkaResource(kafka_bootstrap_servers=bootstrap).ensure_topics(["dagster_created"]) == [
            "dagster_created"
        ]
        for topic in ("simulator_like", "dagster_created"):
            resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
            retention = admin.describe_configs([resource])[resource].result(30)["retention.ms"].value
            assert retention == str(5 * 3600 * 1000), (topic, retention)
    finally:
        _cli(env, "stack", "down")


def test_port_taken_gives_one_line_error(tmp_path):
    env = stack_env(tmp_path / "home")
    port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = _cli(env, "stack", "up")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0], result.stderr
    assert _broker_pids(env["MOVESMART_HOME"]) == []


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "no-port-here"),
        ("MOVESMART_KAFKA_CONTROLLER_PORT", "ninety"),
        ("MOVESMART_WAREHOUSE", "ftp://somewhere"),
        ("MOVESMART_SPARK_MASTER", "mesos://old"),
        ("MOVESMART_SPARK_DRIVER_MEMORY", "2gb"),
        ("MOVESMART_SPARK_CDS", "sometimes"),
        ("MOVESMART_REDSHIFT_IAM_ROLE", "not-an-arn"),
    ],
)
def test_bad_setting_fails_naming_the_variable(tmp_path, var, value):
    env = {**stack_env(tmp_path / "home"), var: value}
    with pytest.raises(SettingsError, match=var):
        load_settings(env)
    result = _cli(env, "stack", "status")
    assert result.returncode == 1
    assert var in result.stderr and result.stderr.count("\n") == 1


def test_settings_defaults_and_derivations(tmp_path):
    s = load_settings({"MOVESMART_HOME": str(tmp_path)})
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert s.kafka_controller_port == 9093
    assert s.spark_master == "local[*]"
    assert s.warehouse == (tmp_path / "warehouse").as_uri()
    assert s.checkpoint_root == (tmp_path / "checkpoints").as_uri()
    s3 = load_settings({"MOVESMART_HOME": str(tmp_path), "MOVESMART_WAREHOUSE": "s3://lake/city"})
    assert s3.warehouse == "s3a://lake/city" and s3.warehouse_bucket == "lake"
    assert s3.checkpoint_root == "s3a://lake/city/_checkpoints"


def test_sasl_password_is_secret_and_passed_through(tmp_path):
    secret = "pw-" + uuid.uuid4().hex
    s = load_settings(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "city",
            "KAFKA_SASL_PASSWORD": secret,
        }
    )
    assert secret not in repr(s) and secret not in str(s.model_dump())
    conf = s.kafka_client_config()
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.password"] == secret
    opts = s.spark_kafka_options()
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert "ScramLoginModule" in opts["kafka.sasl.jaas.config"] and secret in opts["kafka.sasl.jaas.config"]


def test_broker_from_python_api_reports_status(kafka_stack):
    status = KafkaBroker(kafka_stack.settings).status()
    assert status.running and status.pid
    md = AdminClient(
        {"bootstrap.servers": kafka_stack.settings.kafka_bootstrap_servers, **client_logging()}
    ).list_topics(timeout=10)
    assert len(md.brokers) == 1


def test_explicit_settings_ignore_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:1234")
    assert load_settings({"MOVESMART_HOME": str(tmp_path)}).kafka_bootstrap_servers == "localhost:9092"
    assert load_settings().kafka_bootstrap_servers == "elsewhere:1234"
