"""Real Apache Kafka in KRaft mode, run from the Maven-resolved jars: one node, or a replicated
cluster of three.

Why from jars: there is no Docker engine on development machines and CI, and a
broker tarball download is not allowed; `make jars` resolves the exact broker that the
distribution ships (kafka_2.13 plus the log4j2 binding) into `.jars/kafka`.

Why three combined nodes: each node is broker and controller at once, so three processes give
both a replicated log — replication factor 3 and `min.insync.replicas=2` as the brokers'
defaults, so one broker may die without an `acks=all` producer stopping or an acknowledged
record being lost — and a controller quorum that survives the loss of one. The quorum is
dynamic (KIP-853, Kafka 4's shape): `controller.quorum.bootstrap.servers` lists the three
controllers and every node is formatted once with the same `--initial-controllers` (id,
address and directory id of each voter); a single node is formatted `--standalone`. Static
`controller.quorum.voters` is not used (it must not be mixed with either flag).

Layout under MOVESMART_HOME:
    one node (the default; the layout of homes made before the cluster existed):
      kafka/server.properties, kafka/log4j2.properties, kafka/data/, kafka/logs/, run/kafka.pid
    three nodes (`movesmart stack up --brokers 3`):
      kafka/node-<n>/{server.properties,log4j2.properties,data/,logs/}, run/kafka-<n>.pid
      kafka/cluster.json   cluster id, directory ids and controller ports, written before formatting
Configs are generated on every start from the settings; data is formatted once and survives
down/up. Ports: node n (1-based) serves clients on the n-th address of KAFKA_BOOTSTRAP_SERVERS
when that lists one per node, else on its first port + 2(n-1), and its controller on
MOVESMART_KAFKA_CONTROLLER_PORT + 2(n-1): by default 9092/9093, 9094/9095, 9096/9097.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from movesmart_dagster.settings import Settings
from movesmart_dagster.stack.kafka_cluster import (
    CLUSTER_SIZES,
    BrokerStatus,
    KafkaNode,
    NodeStatus,
    replication_for,
)
from movesmart_dagster.stack.processes import (
    PidFile,
    StackError,
    port_bindable,
    spawn_group,
    stop_group,
    wait_for_port,
)

_MAIN_CLASS = "kafka.Kafka"
_START_TIMEOUT_S = 90.0


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("java not found: install Java 17+ or set JAVA_HOME")
    return found


def _kafka_uuid() -> str:
    """A Kafka Uuid in its text form (url-safe base64, no padding); never starting with '-'
    (it would read as an option on the StorageTool's command line)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class KafkaBroker:
    """Start, stop and inspect the local Kafka of `settings`: one node or a cluster of three.

    `brokers` is the size wanted by `up`; by default the size already formatted in this home,
    else MOVESMART_KAFKA_BROKERS. `status` and `down` cover every node of the home's cluster.
    """

    def __init__(self, settings: Settings, heap: str | None = None, brokers: int | None = None) -> None:
        self.settings = settings
        self.heap = heap or os.environ.get("MOVESMART_KAFKA_HEAP", "1g")
        self.base = settings.home_dir / "kafka"
        self.cluster_file = self.base / "cluster.json"
        self.formatted_size = self._formatted_size()
        self.requested = brokers
        self.brokers = brokers or self.formatted_size or settings.kafka_brokers
        if self.brokers not in CLUSTER_SIZES:
            raise StackError(f"--brokers {self.brokers}: a local cluster has 1 or 3 brokers")
        self.nodes = self._plan(self.brokers)

    # --- shape ----------------------------------------------------------------------------
    def _formatted_size(self) -> int | None:
        if self.cluster_file.exists():
            return int(json.loads(self.cluster_file.read_text())["brokers"])
        if (self.base / "data" / "meta.properties").exists():
            return 1
        return None

    def _plan(self, brokers: int) -> list[KafkaNode]:
        s, run = self.settings, self.settings.home_dir / "run"
        addresses = s.kafka_addresses
        if brokers == 1:
            host, port = addresses[0]
            # the marker ties a pid to this home's config, so two stacks never mix up pids
            pid_file = PidFile(run / "kafka.pid", str(self.base / "server.properties"))
            return [KafkaNode(1, host, port, s.kafka_controller_port, self.base, pid_file)]
        if len(addresses) != brokers:
            host, first = addresses[0]
            addresses = [(host, first + 2 * i) for i in range(brokers)]
        nodes = []
        for i, (host, port) in enumerate(addresses):
            base = self.base / f"node-{i + 1}"
            pid_file = PidFile(run / f"kafka-{i + 1}.pid", str(base / "server.properties"))
            nodes.append(KafkaNode(i + 1, host, port, s.kafka_controller_port + 2 * i, base, pid_file))
        return nodes

    @property
    def bootstrap(self) -> str:
        """Every node's client address: what KAFKA_BOOTSTRAP_SERVERS should say."""
        if self.brokers == 1:
            return self.settings.kafka_bootstrap_servers
        return ",".join(n.address for n in self.nodes)

    # --- configuration --------------------------------------------------------------------
    def _server_properties(self, node: KafkaNode) -> str:
        replicas, min_isr = replication_for(self.brokers)
        quorum = ",".join(f"127.0.0.1:{n.controller_port}" for n in self.nodes)
        return "\n".join(
            [
                "# generated by `movesmart stack up`; edit the settings, not this file",
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.bootstrap.servers={quorum}",
                f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners=PLAINTEXT://{node.host}:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={node.data_dir}",
                "num.partitions=3",
                "auto.create.topics.enable=true",
                # topics created without explicit replication (the simulator's, auto-created
                # ones) get these; internal topics likewise
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replicas}",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                f"log.retention.hours={self.settings.kafka_retention_hours}",
                # retention deletes whole segments: roll them daily, so a slow dev stream's
                # records are not kept a week past their retention inside a half-empty segment
                "log.roll.hours=24",
                "message.max.bytes=1048588",
                "",
            ]
        )

    def _log4j_properties(self, node: KafkaNode) -> str:
        log = node.log_dir / "server.log"
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = file",
                f"appender.file.fileName = {log}",
                f"appender.file.filePattern = {log}.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 50MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = file",
                "logger.kafka.name = kafka",
                "logger.kafka.level = INFO",
                "logger.controller.name = org.apache.kafka.controller",
                "logger.controller.level = WARN",
                "",
            ]
        )

    def _classpath(self) -> str:
        jars = self.settings.kafka_jars_dir
        if not jars.is_dir() or not any(jars.glob("kafka_*.jar")):
            raise StackError(f"Kafka broker jars missing in {jars}: run `make setup` (or `make jars`)")
        return f"{jars}/*"

    def _java_cmd(self, node: KafkaNode, main: str, *args: str, resident: bool = False) -> list[str]:
        """resident (the broker, which runs for days): the whole heap taken and touched at start,
        as Kafka's own start script sizes it (-Xms = -Xmx), so its footprint does not creep as
        the collector grows the heap (a soak read that as +9.7% in 25 minutes)."""
        heap = [f"-Xms{self.heap}", "-XX:+AlwaysPreTouch"] if resident else ["-Xms128m"]
        return [
            _java(),
            f"-Xmx{self.heap}",
            *heap,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.log4j_file}",
            f"-Dkafka.logs.dir={node.log_dir}",
            "-cp",
            self._classpath(),
            main,
            *args,
        ]

    def _cluster_plan(self) -> dict:
        """Cluster id and each voter's directory id, fixed once so that a node formatted later
        (after a failed first start) joins the same quorum."""
        if self.cluster_file.exists():
            plan = json.loads(self.cluster_file.read_text())
        else:
            plan = {
                "brokers": self.brokers,
                "cluster_id": _kafka_uuid(),
                "directory_ids": [_kafka_uuid() for _ in self.nodes],
                "controller_ports": [n.controller_port for n in self.nodes],
            }
            if self.brokers > 1:
                self.base.mkdir(parents=True, exist_ok=True)
                self.cluster_file.write_text(json.dumps(plan, indent=2) + "\n")
        return plan

    def _format_args(self, node: KafkaNode, plan: dict) -> list[str]:
        if self.brokers == 1:
            return ["--standalone"]
        voters = ",".join(
            f"{n.node_id}@127.0.0.1:{n.controller_port}:{d}"
            for n, d in zip(self.nodes, plan["directory_ids"], strict=True)
        )
        return ["--initial-controllers", voters]

    def _format_command(self, node: KafkaNode) -> list[str]:
        plan = self._cluster_plan()
        # `--cluster-id=<id>`: one form that never reads as an option whatever the id
        return self._java_cmd(
            node,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={plan['cluster_id']}",
            *self._format_args(node, plan),
            "-c",
            str(node.config_file),
        )

    def _format_storage(self, nodes: list[KafkaNode]) -> None:
        """Format the nodes never formatted, all at once (a JVM start each)."""
        procs = {
            n.node_id: subprocess.Popen(
                self._format_command(n), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for n in nodes
            if not n.formatted
        }
        failures = []
        for node_id, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                tail = out.strip().splitlines()[-1:] or ["no output"]
                failures.append(f"node {node_id}: {tail[0]}")
        if failures:
            raise StackError(f"formatting Kafka storage failed: {'; '.join(failures)}")

    # --- lifecycle ------------------------------------------------------------------------
    def status(self) -> BrokerStatus:
        nodes = []
        for n in self.nodes:
            pid = n.pid_file.read()
            nodes.append(
                NodeStatus(n.node_id, pid is not None, pid, n.address, n.controller_port, n.data_dir)
            )
        return BrokerStatus(tuple(nodes), self.bootstrap)

    def _check_shape(self) -> None:
        if self.formatted_size and self.formatted_size != self.brokers:
            raise StackError(
                f"{self.settings.home_dir} holds a {self.formatted_size}-broker cluster, not {self.brokers}: "
                f"`movesmart stack down`, then delete {self.base} or use another MOVESMART_HOME"
            )
        if self.brokers > 1 and self.cluster_file.exists():
            formatted_ports = json.loads(self.cluster_file.read_text())["controller_ports"]
            wanted = [n.controller_port for n in self.nodes]
            if formatted_ports != wanted:
                raise StackError(
                    f"the cluster in {self.base} was formatted with controller ports {formatted_ports}, "
                    f"MOVESMART_KAFKA_CONTROLLER_PORT now gives {wanted}: set it back or delete {self.base}"
                )
        ports = [p for n in self.nodes for p in (n.port, n.controller_port)]
        if len(set(ports)) != len(ports):
            raise StackError(f"the brokers' ports collide: {ports} (client, controller per node)")

    def up(self) -> BrokerStatus:
        """Start every node that does not run yet; wait until the cluster serves all of them."""
        self._check_shape()
        stopped = [n for n in self.nodes if n.pid_file.read() is None]
        if not stopped:
            return self.status()
        for node in stopped:
            for port in (node.port, node.controller_port):
                if not port_bindable(port):
                    raise StackError(f"port {port} is already in use by another process")
        for node in stopped:
            for d in (node.data_dir, node.log_dir):
                d.mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(self._server_properties(node))
            node.log4j_file.write_text(self._log4j_properties(node))
        self._format_storage(stopped)
        # all at once: a node's client port opens only once a quorum of controllers elected a leader
        procs = {
            node.node_id: spawn_group(
                self._java_cmd(node, _MAIN_CLASS, str(node.config_file), resident=True),
                node.log_dir / "server.out",
            )
            for node in stopped
        }
        for node in stopped:
            node.pid_file.write(procs[node.node_id].pid)
        try:
            for node in stopped:
                proc = procs[node.node_id]
                if not wait_for_port(node.port, _START_TIMEOUT_S, alive=lambda p=proc: p.poll() is None):
                    raise StackError(
                        f"Kafka broker {node.node_id} did not start; see {node.log_dir / 'server.log'}"
                    )
            self._wait_ready(procs, stopped)
        except StackError:
            for node in stopped:
                stop_group(procs[node.node_id], timeout=5)
                node.pid_file.clear()
            raise
        return self.status()

    def _wait_ready(self, procs: dict[int, subprocess.Popen], started: list[KafkaNode]) -> None:
        """A port opens before its broker serves metadata; wait until the cluster lists every
        node we started as a broker."""
        from confluent_kafka.admin import AdminClient

        from movesmart_dagster.kafka_log import probe_logging

        # refused connections are the expected answer until it is up: no librdkafka lines for them
        admin = AdminClient({"bootstrap.servers": self.bootstrap, **probe_logging()})
        wanted = {n.node_id for n in started}
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            for node in started:
                if procs[node.node_id].poll() is not None:
                    raise StackError(
                        f"Kafka broker {node.node_id} exited during start; see {node.log_dir / 'server.log'}"
                    )
            try:
                md = admin.list_topics(timeout=2)
                if wanted <= set(md.brokers):
                    return
            except Exception:  # noqa: BLE001 - any client error means "not ready yet"
                pass
            time.sleep(0.3)
        raise StackError(f"Kafka not ready after {_START_TIMEOUT_S:.0f}s; see {self.base}")

    def down(self, timeout: float = 60.0) -> bool:
        """Stop every node (controlled shutdown); True if any was running."""
        pids = [(n, n.pid_file.read()) for n in self.nodes]
        running = [(n, pid) for n, pid in pids if pid is not None]
        # SIGTERM all first: the last nodes of a quorum would otherwise wait for the others
        for _, pid in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        for node, pid in running:
            stop_group(pid, timeout=timeout)
            node.pid_file.clear()
        return bool(running)
