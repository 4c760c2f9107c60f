"""The local Kafka cluster's shape and state: its nodes, their folders and ports, their status.

Why its own module: what a cluster of one or three KRaft nodes looks like (ports, data and log
folders, replication per size) and how its state is reported change apart from how the broker
processes are configured, started and stopped (`kafka_broker.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from movesmart_dagster.stack.processes import PidFile

CLUSTER_SIZES = (1, 3)


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of the topics of a cluster of `brokers` nodes."""
    return (3, 2) if brokers >= 3 else (1, 1)


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller process of the local cluster."""

    node_id: int
    host: str  # advertised to clients
    port: int
    controller_port: int
    base: Path  # its config, data and logs
    pid_file: PidFile

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_dir(self) -> Path:
        return self.base / "logs"

    @property
    def config_file(self) -> Path:
        return self.base / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.base / "log4j2.properties"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    running: bool
    pid: int | None
    address: str
    controller_port: int
    data_dir: Path


@dataclass(frozen=True)
class BrokerStatus:
    """The local cluster: `running` when every node runs; `pid` and `controller_port` of node 1."""

    nodes: tuple[NodeStatus, ...]
    bootstrap: str

    @property
    def running(self) -> bool:
        return all(n.running for n in self.nodes)

    @property
    def running_count(self) -> int:
        return sum(n.running for n in self.nodes)

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid

    @property
    def controller_port(self) -> int:
        return self.nodes[0].controller_port

    @property
    def data_dir(self) -> Path:
        return self.nodes[0].data_dir
