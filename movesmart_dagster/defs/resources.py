"""Dagster resources, one per integration, thin: each wraps its client and carries its settings.

Why this shape: a resource names the settings it carries once (`carrying(...)`,
`defs/carried_settings.py`): their types, defaults and variables are declared in `Settings`
only, each field is `EnvVar(<variable>)` when set in the loading process's environment, and at
run time `self.settings()` gives every consumer the same validated view. Where Dagster has a
package for the integration, the resource builds on it (dagster-pyspark, dagster-duckdb,
dagster-aws's S3).
"""

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import dagster_duckdb
from dagster_aws.s3 import S3Resource
from dagster_pyspark import LazyPySparkResource
from pydantic import Field as PField

from movesmart_dagster.defs.carried_settings import carrying, env_or_default, variable_of
from movesmart_dagster.settings import load_env_file

# --- Kafka --------------------------------------------------------------------------------


class KafkaResource(
    carrying(
        "kafka_bootstrap_servers",
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
    )
):
    """The broker through confluent-kafka's AdminClient: topics, end offsets, lag."""

    topic_partitions: int = PField(default=3, description="partitions of a topic we create")
    # -1: the broker's default.replication.factor (3 on `stack up --brokers 3`, whose
    # min.insync.replicas=2 would refuse acks=all writes to a topic of one replica)
    replication_factor: int = PField(
        default=-1, description="replication of a topic we create; -1: broker default"
    )
    retention_hours: int | None = PField(
        default=None, description="retention of a topic we create; default MOVESMART_KAFKA_RETENTION_HOURS"
    )

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        from movesmart_dagster.kafka_log import client_logging

        return AdminClient({**self.settings().kafka_client_config(), **client_logging()})

    def ensure_topics(self, topics: Iterable[str], timeout: float = 30.0) -> list[str]:
        """Create the topics that do not exist yet; returns the ones created."""
        from confluent_kafka.admin import NewTopic

        admin = self.admin()
        existing = set(admin.list_topics(timeout=timeout).topics)
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        retention = str((self.retention_hours or self.settings().kafka_retention_hours) * 3600 * 1000)
        futures = admin.create_topics(
            [
                NewTopic(
                    t, self.topic_partitions, self.replication_factor, config={"retention.ms": retention}
                )
                for t in missing
            ],
            operation_timeout=timeout,
        )
        for topic, fut in futures.items():
            try:
                fut.result()
            except Exception as err:  # noqa: BLE001 - a concurrent creator is fine
                if "TOPIC_ALREADY_EXISTS" not in str(err):
                    raise
            else:
                del topic
        return missing

    def end_offsets(self, topics: Iterable[str], timeout: float = 8.0) -> dict[str, dict[int, int]]:
        """High watermark per topic partition ({} for a topic that does not exist)."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        admin = self.admin()
        md = admin.list_topics(timeout=timeout)
        wanted: dict[TopicPartition, Any] = {}
        out: dict[str, dict[int, int]] = {}
        for topic in topics:
            out[topic] = {}
            tmd = md.topics.get(topic)
            if tmd is None or tmd.error is not None:
                continue
            for p in tmd.partitions:
                wanted[TopicPartition(topic, p)] = OffsetSpec.latest()
        if wanted:
            for tp, fut in admin.list_offsets(wanted, request_timeout=timeout).items():
                out[tp.topic][tp.partition] = int(fut.result().offset)
        return out

    def consumer_lag(
        self, committed: Mapping[str, Mapping[int, int]], topics: Iterable[str], timeout: float = 8.0
    ) -> dict[str, int]:
        """End offsets minus what the streaming job has committed, per topic.

        Spark's Kafka source does not commit consumer-group offsets, so `committed` comes from
        the job's progress log (see `defs.streaming.progress_state`).
        """
        return lag_per_topic(self.end_offsets(topics, timeout), committed)


def lag_per_topic(
    ends: Mapping[str, Mapping[int, int]], committed: Mapping[str, Mapping[int, int]]
) -> dict[str, int]:
    """Records beyond the committed offsets, per topic (a partition never committed counts whole)."""
    return {
        topic: sum(max(0, end - int(committed.get(topic, {}).get(p, 0))) for p, end in parts.items())
        for topic, parts in ends.items()
    }


# --- Spark --------------------------------------------------------------------------------


class SparkResource(
    carrying(
        "spark_master",
        "spark_driver_memory",
        "jars_dir",
        "s3_endpoint",
        "aws_region",
        "home",
        "warehouse_uri",
    ),
    LazyPySparkResource,
):
    """dagster-pyspark's lazy resource (`spark_session`, `spark_context`, `spark_config`), with the
    session built by our one builder from the settings; and the streaming job's launch line.

    Why our builder under dagster-pyspark's interface: the jars, S3A and the Iceberg catalog must
    be set before the JVM starts and a reused session's catalog reset (`spark_session.build_spark`);
    `spark_config` holds only what a user adds on top (the launchpad's place for it), for every
    session this resource builds and for the streaming job it launches (`--conf`)."""

    spark_config: dict[str, Any] = PField(
        default_factory=dict, description="Spark settings on top of those derived from the settings"
    )

    @classmethod
    def _is_dagster_maintained(cls) -> bool:
        return False

    def conf(self, app_name: str = "movesmart") -> dict[str, str]:
        from movesmart_dagster.spark_session import spark_conf

        return {**spark_conf(self.settings(), app_name), **self.extra_conf()}

    def extra_conf(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.spark_config.items()}

    def session(self, app_name: str = "movesmart-dagster") -> Any:
        """A SparkSession (reused within a run worker; stopped by the run's end)."""
        from movesmart_dagster.spark_session import build_spark

        return build_spark(self.settings(), app_name, extra=self.extra_conf())

    def _init_session(self) -> None:  # behind dagster-pyspark's `spark_session`/`spark_context`
        if self._spark_session is None:
            self._spark_session = self.session()

    def streaming_command(
        self, trigger_interval: str, max_offsets_per_trigger: int | None = None, available_now: bool = False
    ) -> list[str]:
        """The streaming job as a child process (it builds its own session from the settings,
        with `spark_config` on top)."""
        cmd = [sys.executable, "-u", "-m", "movesmart_dagster.streaming.job"]
        if available_now:
            cmd.append("--available-now")
        else:
            cmd += ["--trigger-interval", trigger_interval]
        if max_offsets_per_trigger:
            cmd += ["--max-offsets-per-trigger", str(max_offsets_per_trigger)]
        for key, value in self.extra_conf().items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd

    def spark_submit_command(self, script: str, args: list[str] | None = None) -> list[str]:
        """`spark-submit` with our conf, for a cluster deployment (`spark://`, yarn, k8s)."""
        import pyspark

        submit = str(Path(pyspark.__file__).parent / "bin" / "spark-submit")
        cmd = [submit]
        for key, value in self.conf().items():
            if key == "spark.master":
                cmd += ["--master", value]
            elif key == "spark.jars":
                cmd += ["--jars", value]
            else:
                cmd += ["--conf", f"{key}={value}"]
        return [*cmd, script, *(args or [])]

    def child_env(self) -> dict[str, str]:
        """Environment of a child job: ours plus these fields, so a launchpad override sticks."""
        env = dict(os.environ)
        for f in self._FIELDS:
            value = getattr(self, f)
            if value not in (None, ""):
                env[variable_of(f)] = str(value)
        return env


# --- warehouse (local folder or S3) ---------------------------------------------------------


class WarehouseResource(
    carrying("home", "warehouse_uri", "s3_endpoint", "aws_region", "catalog", "glue_database")
):
    """Where the tables live: a local folder by default, or S3 (AWS, MinIO, the local endpoint)."""

    s3: S3Resource

    @property
    def root(self) -> str:
        return self.settings().warehouse

    def local_path(self, *parts: str) -> Path | None:
        """The filesystem path of a local warehouse location; None on S3."""
        root = self.root
        if not root.startswith("file://"):
            return None
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(root).path), *parts)

    def list_partitions(self, table: str) -> list[str]:
        """The days (event_date values) holding rows in the table's current Iceberg snapshot."""
        from movesmart_dagster.tables.scan import list_partitions

        return list_partitions(self.settings(), table)


def s3_resource_from_env() -> S3Resource:
    """dagster-aws's S3Resource pointed at MOVESMART_S3_ENDPOINT when set (credentials: provider chain)."""
    endpoint = env_or_default("s3_endpoint")
    region = env_or_default("aws_region")
    return (
        S3Resource(region_name=region, endpoint_url=endpoint) if endpoint else S3Resource(region_name=region)
    )


# --- Glue and Redshift ----------------------------------------------------------------------


class CatalogResource(
    carrying("catalog", "glue_database", "aws_region", "s3_endpoint", "home", "warehouse_uri")
):
    """The Iceberg catalog of the tables (`tables.catalog`): SQLite under MOVESMART_HOME, or Glue."""

    def load(self) -> Any:
        """pyiceberg's catalog of the tables."""
        from movesmart_dagster.tables.catalog import load_catalog

        return load_catalog(self.settings())


class RedshiftResource(
    carrying(
        "redshift_cluster_id",
        "redshift_workgroup",
        "redshift_database",
        "redshift_db_user",
        "redshift_iam_role",
        "redshift_schema",
        "glue_database",
        "aws_region",
    )
):
    """Redshift through the Data API (provisioned cluster or serverless workgroup)."""

    @property
    def configured(self) -> bool:
        s = self.settings()
        return bool((s.redshift_cluster_id or s.redshift_workgroup) and s.redshift_iam_role)

    def client(self) -> Any:
        import boto3

        return boto3.client("redshift-data", region_name=self.settings().aws_region)

    def statements(self) -> list[str]:
        from movesmart_dagster.catalog.redshift import external_schema_statements

        return external_schema_statements(self.settings())

    def execute(self, statements: list[str], client: Any = None) -> list[str]:
        """Run statements through the catalog module's Data API executor; returns statement ids."""
        from movesmart_dagster.catalog import RedshiftDataExecutor

        executor = RedshiftDataExecutor.from_settings(self.settings(), client or self.client())
        executor.execute_all(statements)
        return list(executor.statement_ids)


# --- DuckDB ---------------------------------------------------------------------------------


class DuckDBResource(
    carrying("home", "warehouse_uri", "s3_endpoint", "aws_region"), dagster_duckdb.DuckDBResource
):
    """The embedded query engine: dagster-duckdb's resource (its connection config, its retries
    while another process holds the file's lock) with the tables' views on every connection.

    `database` is in-memory by default, so checks never hold the lock of the persistent file;
    `views(persistent=True)` opens the persistent file under MOVESMART_HOME that `movesmart query`
    reads (`catalog/dev_smartcity` writes its views there)."""

    database: str = PField(default=":memory:", description="DuckDB database of the checks' connections")

    @property
    def database_path(self) -> Path:
        return self.settings().home_dir / "movesmart.duckdb"

    @contextmanager
    def views(self, day: str | None = None, persistent: bool = False) -> Iterator[Any]:
        """A connection with one view per table in `main` and `dev_smartcity`
        (`movesmart_dagster.tables`); with `day`, views over that day's partition only."""
        from movesmart_dagster import tables

        source: dagster_duckdb.DuckDBResource = self
        if persistent:
            self.database_path.parent.mkdir(parents=True, exist_ok=True)
            source = dagster_duckdb.DuckDBResource(
                database=str(self.database_path), connection_config=self.connection_config
            )
        with source.get_connection() as con:
            con.execute("SET TimeZone = 'UTC'")
            tables.register_views(con, self.settings(), day=day)
            yield con


# --- alerts -----------------------------------------------------------------------------------


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: always the Dagster log, and a Slack-compatible webhook when configured."""

    webhook_url: str | None = PField(default=None, description="MOVESMART_ALERT_WEBHOOK_URL (secret)")
    dagster_url: str = PField(default="http://localhost:3000", description="link placed in alerts")
    timeout_s: float = 10.0

    def send(self, text: str, blocks: list[dict[str, Any]] | None = None, log: Any = None) -> bool:
        """Post {"text", "blocks"}; True if a webhook accepted it. Log errors, never raise."""
        if log is not None:
            log.warning(f"ALERT {text}")
        if not self.webhook_url:
            return False
        body = json.dumps(
            {
                "text": text,
                "blocks": blocks or [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
            }
        )
        req = urllib.request.Request(
            self.webhook_url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return 200 <= resp.status < 300
            except OSError as err:
                if log is not None:
                    log.error(f"alert webhook failed (attempt {attempt + 1}): {err}")
                time.sleep(0.5 * (attempt + 1))
        return False


def build_resources() -> dict[str, Any]:
    """All resources, configured from the environment of the loading process (`.env` in it)."""
    load_env_file()
    s3 = s3_resource_from_env()
    webhook = (
        dg.EnvVar("MOVESMART_ALERT_WEBHOOK_URL") if "MOVESMART_ALERT_WEBHOOK_URL" in os.environ else None
    )
    return {
        "kafka": KafkaResource.from_env(),
        "spark": SparkResource.from_env(),
        "s3": s3,
        "warehouse": WarehouseResource.from_env(s3=s3),
        "catalog": CatalogResource.from_env(),
        "redshift": RedshiftResource.from_env(),
        "duckdb": DuckDBResource.from_env(),
        "alerts": AlertResource(webhook_url=webhook),
    }
