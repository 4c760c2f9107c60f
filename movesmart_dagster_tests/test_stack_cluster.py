"""`movesmart stack up --brokers 3`: three real KRaft nodes with a controller quorum, replicated
topics, one `status` and `down` for all, idempotent `up`, one-line errors.

Each test runs its own cluster on free loopback ports under a temporary home (the nodes take
consecutive ports: client P, P+2, P+4 and controller P+1, P+3, P+5).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.settings import load_settings
from movesmart_dagster.simulator.producer import ensure_topics
from movesmart_dagster.stack.audit import replica_state
from movesmart_dagster.stack.processes import free_port_block
from movesmart_dagster_tests.conftest import stack_env

MOVESMART = [sys.executable, "-m", "movesmart_dagster.cli"]


def cluster_env(home: str) -> dict[str, str]:
    """A home whose three nodes get free consecutive ports; the bootstrap lists all three."""
    base = free_port_block(6)
    return stack_env(
        home,
        KAFKA_BOOTSTRAP_SERVERS=",".join(f"localhost:{base + 2 * i}" for i in range(3)),
        MOVESMART_KAFKA_CONTROLLER_PORT=str(base + 1),
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MOVESMART, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=240
    )


def _node_pids(home: str) -> dict[int, int]:
    """node id -> pid of every broker JVM of this home's cluster."""
    pids = {}
    for node in (1, 2, 3):
        out = subprocess.run(
            ["pgrep", "-f", f"{home}/kafka/node-{node}/server.properties"], capture_output=True, text=True
        )
        found = [int(p) for p in out.stdout.split()]
        assert len(found) <= 1, f"node {node} runs {len(found)} times"
        if found:
            pids[node] = found[0]
    return pids


def _min_insync(bootstrap: str, topics: tuple[str, ...]) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap, **client_logging()})
    futures = admin.describe_configs([ConfigResource("topic", t) for t in topics])
    return {res.name: fut.result(30)["min.insync.replicas"].value for res, fut in futures.items()}


@pytest.mark.slow
def test_three_brokers_replicate_topics_and_stop_together(tmp_path):
    env = cluster_env(str(tmp_path / "home"))
    home, bootstrap = env["MOVESMART_HOME"], env["KAFKA_BOOTSTRAP_SERVERS"]
    try:
        first = _cli(env, "stack", "up", "--brokers", "3")
        assert first.returncode == 0, first.stderr
        assert f"kafka   3/3 brokers running bootstrap={bootstrap}" in first.stdout
        assert "replication 3, min.insync.replicas 2" in first.stdout
        pids = _node_pids(home)
        assert sorted(pids) == [1, 2, 3]
        for node, pid in pids.items():
            assert f"broker {node} running pid={pid}" in first.stdout

        # idempotent, with or without the flag: the home's cluster size is remembered
        again = _cli(env, "stack", "up")
        assert again.returncode == 0, again.stderr
        assert _node_pids(home) == pids and "3/3 brokers running" in again.stdout
        # a home holds one cluster shape: asking for another is one line, nothing changes
        other = _cli(env, "stack", "up", "--brokers", "1")
        assert other.returncode == 1
        assert other.stderr.count("\n") == 1 and "holds a 3-broker cluster" in other.stderr, other.stderr
        assert _node_pids(home) == pids

        # the simulator's topics (created with the brokers' defaults): 3 replicas, all in sync, min ISR 2
        settings = load_settings(env)
        ensure_topics(settings)
        # created topics reach every broker's metadata a moment later (KRaft propagates them)
        deadline = time.monotonic() + 60
        state = replica_state(settings)
        while ({t for t, _ in state} != set(TOPICS) or set(state.values()) != {(3, 3)}) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
            state = replica_state(settings)
        assert {t for t, _ in state} == set(TOPICS)
        assert set(state.values()) == {(3, 3)}, state
        assert _min_insync(bootstrap, TOPICS) == dict.fromkeys(TOPICS, "2")
        md = AdminClient({"bootstrap.servers": bootstrap, **client_logging()}).list_topics(timeout=10)
        assert sorted(md.brokers) == [1, 2, 3]

        status = _cli(env, "stack", "status")
        assert status.returncode == 0 and "kafka   3/3 brokers running" in status.stdout
        assert all(f"broker {n} running pid={pids[n]}" in status.stdout for n in pids)

        down = _cli(env, "stack", "down")
        assert down.returncode == 0 and "kafka   stopped 3 brokers" in down.stdout, down.stdout
        assert _node_pids(home) == {}
        status = _cli(env, "stack", "status")
        assert "kafka   0/3 brokers running" in status.stdout
        assert all(f"broker {n} stopped" in status.stdout for n in (1, 2, 3))
    finally:
        _cli(env, "stack", "down")
    assert _node_pids(home) == {}


def test_a_taken_port_of_the_second_node_is_one_line(tmp_path):
    env = cluster_env(str(tmp_path / "home"))
    taken = int(env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[1].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        result = _cli(env, "stack", "up", "--brokers", "3")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {taken} is already in use" in lines[0], result.stderr
    assert _node_pids(env["MOVESMART_HOME"]) == {}


def test_bootstrap_of_one_address_spreads_the_nodes_two_ports_apart(tmp_path):
    """KAFKA_BOOTSTRAP_SERVERS=host:P gives nodes P, P+2, P+4 (controllers C, C+2, C+4);
    nothing is started here, the plan alone is checked."""
    from movesmart_dagster.stack.kafka_broker import KafkaBroker

    settings = load_settings(
        {
            "MOVESMART_HOME": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "localhost:9092",
            "MOVESMART_KAFKA_BROKERS": "3",
        }
    )
    cluster = KafkaBroker(settings)
    assert [(n.port, n.controller_port) for n in cluster.nodes] == [(9092, 9093), (9094, 9095), (9096, 9097)]
    assert cluster.bootstrap == "localhost:9092,localhost:9094,localhost:9096"
    assert KafkaBroker(load_settings({"MOVESMART_HOME": str(tmp_path)})).brokers == 1


def test_brokers_setting_accepts_one_or_three(tmp_path):
    from movesmart_dagster.settings import SettingsError

    with pytest.raises(SettingsError, match="MOVESMART_KAFKA_BROKERS"):
        load_settings({"MOVESMART_HOME": str(tmp_path), "MOVESMART_KAFKA_BROKERS": "2"})


def test_single_node_topics_have_one_replica_and_min_isr_one(kafka_stack):
    settings = kafka_stack.settings
    ensure_topics(settings)
    state = replica_state(settings)
    assert set(state.values()) == {(1, 1)}, state
    assert _min_insync(settings.kafka_bootstrap_servers, TOPICS) == dict.fromkeys(TOPICS, "1")
