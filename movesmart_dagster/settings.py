"""Typed settings for every Move Smart process, read once from the environment.

Why one object: the simulator, the streaming job, the Dagster resources and the CLI all
need the same facts (where Kafka is, where the warehouse is). Reading them in one place
means one validation, one default, one error message per bad value — and no module
inventing its own variable names. Values come from the environment and, when present,
a `.env` file in the working directory: `load_env_file` puts its values into the process
environment (the environment winning), as `dagster dev` does for its code locations, so the
CLI, the definitions, the resources and every child they start read one environment. Credentials are never settings of ours: AWS
credentials come from the default provider chain; the Kafka SASL password is read from
the environment and kept as a secret (never printed).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from datetime import time as datetime_time
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@/\-]+$")
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z\-]*:kms:[a-z0-9\-]+:\d{12}:(key|alias)/[\w/\-]+|alias/[\w/\-]+|[0-9a-fA-F\-]{36}|mrk-[0-9a-f]{32})$"
)


class SettingsError(ValueError):
    """A setting has a malformed value; the message names the environment variable."""


class Settings(BaseSettings):
    """All settings; each field's alias is the environment variable it is read from."""

    # Each field is read only from its alias, spelled exactly as documented: reading by field
    # name too (populate_by_name) made `home` come from $HOME; case-insensitive matching would
    # accept names the README never shows.
    model_config = SettingsConfigDict(
        extra="ignore",
        case_sensitive=True,
        frozen=True,
    )

    # --- local home and warehouse -------------------------------------------------------
    home: Path = Field(Path(".movesmart"), alias="MOVESMART_HOME")
    warehouse_uri: str = Field("", alias="MOVESMART_WAREHOUSE")
    jars_dir: Path = Field(REPO_ROOT / ".jars", alias="MOVESMART_JARS_DIR")

    # --- Kafka --------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field("localhost:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_controller_port: int = Field(9093, alias="MOVESMART_KAFKA_CONTROLLER_PORT", ge=1, le=65535)
    # local brokers of `movesmart stack up` when its --brokers is not given: 1, or 3 (replicated)
    kafka_brokers: int = Field(1, alias="MOVESMART_KAFKA_BROKERS")
    # how long the local broker (`stack up`) and the topics Dagster creates keep records: what
    # bounds Kafka's disk (~0.9 GB an hour at 2,000 events/s); a stream stopped for longer loses
    # the oldest records, which its job refuses to skip silently (Spark's failOnDataLoss, on)
    kafka_retention_hours: int = Field(168, alias="MOVESMART_KAFKA_RETENTION_HOURS", ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_ca_location: Path | None = Field(None, alias="KAFKA_SSL_CA_LOCATION")
    kafka_ssl_certificate_location: Path | None = Field(None, alias="KAFKA_SSL_CERTIFICATE_LOCATION")
    kafka_ssl_key_location: Path | None = Field(None, alias="KAFKA_SSL_KEY_LOCATION")

    # --- Spark --------------------------------------------------------------------------
    spark_master: str = Field("local[*]", alias="MOVESMART_SPARK_MASTER")
    spark_driver_memory: str = Field("2g", alias="MOVESMART_SPARK_DRIVER_MEMORY")
    # map the driver's class-data archive (`make setup` builds it; see tools/build_spark_cds.py)
    spark_cds: bool = Field(True, alias="MOVESMART_SPARK_CDS")
    # the streaming job quarantines (`oversized`) Kafka values larger than this, unparsed
    max_message_bytes: int = Field(1_048_576, alias="MOVESMART_MAX_MESSAGE_BYTES", ge=1)
    # records the fast path cannot vouch for that the driver judges with the Python
    # reference at a time (a chunk; a batch may need several): bounds the driver's memory
    driver_validation_max_rows: int = Field(50_000, alias="MOVESMART_DRIVER_VALIDATION_MAX_ROWS", ge=1)

    # --- table maintenance (`movesmart tables ...`, tables/maintenance.py) -----------------
    # the size compaction rewrites a day's data files into
    target_file_bytes: int = Field(128 * 1024 * 1024, alias="MOVESMART_TARGET_FILE_BYTES", ge=1)
    # snapshots older than this are expired (the last few are always kept): ISO 8601 (PT1H, P3D).
    # Short, because the stream commits a snapshot per table every trigger (1,800 an hour at 2 s)
    # and every snapshot stays in the metadata file each commit rewrites and each reader parses
    snapshot_retention: timedelta = Field(timedelta(hours=1), alias="MOVESMART_SNAPSHOT_RETENTION")

    # --- S3 / AWS -----------------------------------------------------------------------
    s3_endpoint: str | None = Field(None, alias="MOVESMART_S3_ENDPOINT")
    s3_local_port: int = Field(9000, alias="MOVESMART_S3_LOCAL_PORT", ge=1, le=65535)
    s3_bucket: str = Field("movesmart", alias="MOVESMART_S3_BUCKET")
    aws_region: str = Field("us-east-1", alias="AWS_REGION")
    # server-side encryption of everything S3A writes; the KMS key is an id/ARN, not a secret
    s3_sse: Literal["none", "SSE-S3", "SSE-KMS"] = Field("none", alias="MOVESMART_S3_SSE")
    s3_sse_kms_key_id: str | None = Field(None, alias="MOVESMART_S3_SSE_KMS_KEY_ID")

    # --- catalog and warehouse SQL ------------------------------------------------------
    # the Iceberg catalog of the tables: `local` (a SQLite file under MOVESMART_HOME) or `glue`
    catalog: Literal["local", "glue"] = Field("local", alias="MOVESMART_CATALOG")
    # the catalog's namespace of the six tables (the Glue database in AWS mode)
    glue_database: str = Field("smartcity", alias="MOVESMART_GLUE_DATABASE")
    redshift_cluster_id: str | None = Field(None, alias="MOVESMART_REDSHIFT_CLUSTER_ID")
    redshift_workgroup: str | None = Field(None, alias="MOVESMART_REDSHIFT_WORKGROUP")
    redshift_database: str = Field("dev", alias="MOVESMART_REDSHIFT_DATABASE")
    redshift_db_user: str | None = Field(None, alias="MOVESMART_REDSHIFT_DB_USER")
    redshift_iam_role: str | None = Field(None, alias="MOVESMART_REDSHIFT_IAM_ROLE")
    redshift_schema: str = Field("dev_smartcity", alias="MOVESMART_REDSHIFT_SCHEMA")

    # --- Dagster platform: freshness, supervision, alerts, analytics ----------------------
    # how long the automation sensor's evaluations are kept (the UI's *Automation* history):
    # Dagster purges them after 30 days only when the daemon evaluates; a code-server sensor's
    # are kept forever, ~0.5 MB per tick while the stream runs (defs/automation_history.py)
    automation_history: timedelta = Field(timedelta(hours=6), alias="MOVESMART_AUTOMATION_HISTORY")
    freshness_fail_minutes: float = Field(5.0, alias="MOVESMART_FRESHNESS_FAIL_MINUTES", gt=0)
    catalog_freshness_fail_minutes: float = Field(
        120.0, alias="MOVESMART_CATALOG_FRESHNESS_FAIL_MINUTES", gt=0
    )
    # a short trigger serves latency (bench/bench_streaming.py); the snapshots it makes are
    # expired hourly (MOVESMART_SNAPSHOT_RETENTION), its small files compacted per closed day
    stream_trigger_interval: str = Field("2 seconds", alias="MOVESMART_STREAM_TRIGGER_INTERVAL")
    supervisor_interval_seconds: int = Field(15, alias="MOVESMART_SUPERVISOR_INTERVAL_SECONDS", ge=1)
    supervisor_stall_seconds: float = Field(300.0, alias="MOVESMART_SUPERVISOR_STALL_SECONDS", gt=0)
    supervisor_backoff_base_seconds: float = Field(15.0, alias="MOVESMART_SUPERVISOR_BACKOFF_SECONDS", ge=0)
    supervisor_backoff_max_seconds: float = Field(
        600.0, alias="MOVESMART_SUPERVISOR_BACKOFF_MAX_SECONDS", ge=0
    )
    alert_webhook_url: SecretStr | None = Field(None, alias="MOVESMART_ALERT_WEBHOOK_URL")
    quarantine_max_share: float = Field(0.05, alias="MOVESMART_QUARANTINE_MAX_SHARE", ge=0, le=1)
    # the first day of data: the first daily partition of the tables and the analytics, and the
    # earliest event time a record may carry (earlier ones are quarantined, `out_of_range`)
    start_date: str = Field("2024-01-01", alias="MOVESMART_START_DATE")
    # the old name of MOVESMART_START_DATE: read only to refuse it with a message (see _check_renamed)
    renamed_analytics_start_date: str | None = Field(None, alias="MOVESMART_ANALYTICS_START_DATE")
    # how far an event time may lie ahead of its ingestion (the Kafka record timestamp) before
    # the record is quarantined (`out_of_range`): ISO 8601 (P1D, PT6H)
    max_future_skew: timedelta = Field(timedelta(days=1), alias="MOVESMART_MAX_FUTURE_SKEW")
    # the streaming run reports at most one materialization per (table, day) per this interval
    materialization_interval_seconds: float = Field(
        60.0, alias="MOVESMART_MATERIALIZATION_INTERVAL_SECONDS", ge=0
    )
    # a day counts as closed this long after its end (late records may still arrive until then):
    # its analytics are computed and its files compacted only once it is closed
    late_grace_minutes: float = Field(15.0, alias="MOVESMART_LATE_GRACE_MINUTES", ge=0)
    # how many closed days back late records still recompute a day's analytics automatically
    # (older days: a manual run or backfill)
    late_lookback_days: int = Field(7, alias="MOVESMART_LATE_LOOKBACK_DAYS", ge=1)
    # a topic's consumer lag check warns once its lag has stayed above this many records for
    # a few minutes, and fails when it keeps growing beyond that
    lag_warn_records: int = Field(10_000, alias="MOVESMART_LAG_WARN_RECORDS", ge=1)
    # the streaming progress log is rotated to `progress.jsonl.1` once it would grow past this
    # (so the two files hold at most twice this; see streaming/progress.py)
    progress_log_max_bytes: int = Field(32 << 20, alias="MOVESMART_PROGRESS_LOG_MAX_BYTES", ge=4096)
    # what a terminal shows of Dagster: `dagster dev`'s services and each run's console (the UI
    # keeps every event whatever this says)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("WARNING", alias="MOVESMART_LOG_LEVEL")

    # --- validators: each names its variable in the error --------------------------------
    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or not all(_HOST_PORT.match(p) for p in parts):
            raise ValueError("expected host:port[,host:port...]")
        for p in parts:
            port = int(p.rsplit(":", 1)[1])
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} out of range 1..65535")
        return ",".join(parts)

    @field_validator("kafka_brokers")
    @classmethod
    def _check_brokers(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("expected 1 (a single node) or 3 (a replicated cluster)")
        return value

    @field_validator("warehouse_uri")
    @classmethod
    def _check_warehouse(cls, value: str) -> str:
        if not value:
            return value
        scheme = urlparse(value).scheme
        if scheme not in ("file", "s3a", "s3"):
            raise ValueError("expected file:///path or s3a://bucket/prefix")
        if scheme in ("s3a", "s3") and not urlparse(value).netloc:
            raise ValueError("s3a:// warehouse needs a bucket: s3a://bucket/prefix")
        return value.rstrip("/")

    @field_validator("s3_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value and urlparse(value).scheme not in ("http", "https"):
            raise ValueError("expected http(s)://host:port")
        return value or None

    @field_validator("redshift_iam_role")
    @classmethod
    def _check_role(cls, value: str | None) -> str | None:
        if value and not _IAM_ROLE_ARN.match(value):
            raise ValueError("expected arn:aws:iam::<12-digit account>:role/<name>")
        return value or None

    @field_validator("spark_master")
    @classmethod
    def _check_master(cls, value: str) -> str:
        if not re.match(r"^(local(\[(\*|\d+)\])?|spark://.+|yarn|k8s://.+)$", value):
            raise ValueError("expected local[*], local[N], spark://host:port, yarn or k8s://...")
        return value

    @field_validator("spark_driver_memory")
    @classmethod
    def _check_memory(cls, value: str) -> str:
        # a JVM heap size (Spark passes it to the driver JVM as -Xmx)
        if not re.match(r"^[1-9]\d*[kKmMgGtT]?$", value.strip()):
            raise ValueError("expected a JVM heap size such as 512m or 2g")
        return value.strip()

    @field_validator("snapshot_retention", "max_future_skew", "automation_history")
    @classmethod
    def _check_duration(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("expected a duration of at least 0 (P1D, PT12H)")
        return value

    @field_validator("start_date")
    @classmethod
    def _check_start_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError("expected a date YYYY-MM-DD") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        return str(value).strip().upper()

    @field_validator("s3_sse", mode="before")
    @classmethod
    def _check_sse(cls, value: str) -> str:
        # accept any case ("sse-kms", "NONE"); the Literal then rejects anything else
        canonical = {"none": "none", "sse-s3": "SSE-S3", "sse-kms": "SSE-KMS"}
        return canonical.get(str(value).strip().lower(), value) if value else "none"

    @field_validator("s3_sse_kms_key_id")
    @classmethod
    def _check_kms_key(cls, value: str | None) -> str | None:
        if value and not _KMS_KEY.match(value):
            raise ValueError("expected a KMS key id, alias/<name> or arn:aws:kms:<region>:<account>:key/<id>")
        return value or None

    @model_validator(mode="after")
    def _check_sse_key(self) -> Settings:
        if self.s3_sse_kms_key_id and self.s3_sse != "SSE-KMS":
            raise ValueError("MOVESMART_S3_SSE_KMS_KEY_ID is set but MOVESMART_S3_SSE is not SSE-KMS")
        return self

    @model_validator(mode="after")
    def _check_catalog(self) -> Settings:
        if self.catalog == "glue" and not self.warehouse.startswith(("s3a://", "s3://")):
            raise ValueError(
                "MOVESMART_CATALOG=glue needs an S3 warehouse: MOVESMART_WAREHOUSE=s3a://bucket/prefix"
            )
        return self

    @model_validator(mode="after")
    def _check_renamed(self) -> Settings:
        # not an alias: a value set under the old name must not be silently ignored, and two
        # names for one setting would leave a reader guessing which one wins
        if self.renamed_analytics_start_date is not None:
            raise ValueError(
                "MOVESMART_ANALYTICS_START_DATE was renamed MOVESMART_START_DATE (it now also bounds "
                "the tables' event times): set MOVESMART_START_DATE instead"
            )
        return self

    @model_validator(mode="after")
    def _check_sasl(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_mechanism:
            raise ValueError("KAFKA_SASL_MECHANISM is required when KAFKA_SECURITY_PROTOCOL is SASL_*")
        return self

    # --- derived facts --------------------------------------------------------------------
    @property
    def start_time(self) -> datetime:
        """MOVESMART_START_DATE at 00:00 UTC: the earliest event time a table accepts."""
        return datetime.combine(date.fromisoformat(self.start_date), datetime_time(), UTC)

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @cached_property
    def warehouse(self) -> str:
        """Warehouse root URI: `file:///abs/path` or `s3a://bucket/prefix`."""
        if self.warehouse_uri:
            if self.warehouse_uri.startswith("s3://"):
                return "s3a://" + self.warehouse_uri[len("s3://") :]
            return self.warehouse_uri
        return (self.home_dir / "warehouse").as_uri()

    @property
    def warehouse_is_s3(self) -> bool:
        return self.warehouse.startswith("s3a://")

    @property
    def warehouse_bucket(self) -> str:
        """The bucket of an s3a warehouse, else the configured bucket for the local endpoint."""
        return urlparse(self.warehouse).netloc if self.warehouse_is_s3 else self.s3_bucket

    @property
    def checkpoint_root(self) -> str:
        """Streaming checkpoints: under MOVESMART_HOME locally, beside the warehouse on S3."""
        if self.warehouse_is_s3:
            return f"{self.warehouse}/_checkpoints"
        return (self.home_dir / "checkpoints").as_uri()

    @property
    def progress_log(self) -> Path:
        """Append-only JSONL of committed micro-batches (see streaming/progress.py)."""
        return self.home_dir / "streaming" / "progress.jsonl"

    @property
    def kafka_addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) of KAFKA_BOOTSTRAP_SERVERS, in order."""
        return [
            (a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in self.kafka_bootstrap_servers.split(",")
        ]

    @property
    def kafka_jars_dir(self) -> Path:
        return self.jars_dir / "kafka"

    @property
    def spark_jars_dir(self) -> Path:
        return self.jars_dir / "spark"

    @property
    def spark_cds_archive(self) -> Path:
        return self.jars_dir / "spark-driver.jsa"

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) security settings; empty for PLAINTEXT."""
        conf: dict[str, str] = {"bootstrap.servers": self.kafka_bootstrap_servers}
        if self.kafka_security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        if self.kafka_ssl_certificate_location:
            conf["ssl.certificate.location"] = str(self.kafka_ssl_certificate_location)
        if self.kafka_ssl_key_location:
            conf["ssl.key.location"] = str(self.kafka_ssl_key_location)
        return conf

    def spark_kafka_options(self) -> dict[str, str]:
        """The same security settings for Spark's Kafka source (`kafka.`-prefixed Java names)."""
        opts = {"kafka.bootstrap.servers": self.kafka_bootstrap_servers}
        if self.kafka_security_protocol != "PLAINTEXT":
            opts["kafka.security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            opts["kafka.sasl.mechanism"] = self.kafka_sasl_mechanism
            login = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.kafka_sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            user = self.kafka_sasl_username or ""
            pwd = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            opts["kafka.sasl.jaas.config"] = f'{login} required username="{user}" password="{pwd}";'
        if self.kafka_ssl_ca_location:
            opts["kafka.ssl.truststore.type"] = "PEM"
            opts["kafka.ssl.truststore.location"] = str(self.kafka_ssl_ca_location)
        if self.kafka_ssl_certificate_location and self.kafka_ssl_key_location:
            opts["kafka.ssl.keystore.type"] = "PEM"
            opts["kafka.ssl.keystore.certificate.chain"] = Path(
                self.kafka_ssl_certificate_location
            ).read_text()
            opts["kafka.ssl.keystore.key"] = Path(self.kafka_ssl_key_location).read_text()
        return opts


ENV_FILE = ".env"


def load_env_file(path: str | Path = ENV_FILE) -> None:
    """Values of a `.env` file (in the working directory by default) into the process
    environment; a variable already set keeps its value."""
    from dotenv import load_dotenv

    load_dotenv(path, override=False, encoding="utf-8")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment, `.env` loaded into it).

    A malformed value raises SettingsError whose message names the variable, e.g.
    `KAFKA_BOOTSTRAP_SERVERS='nope': expected host:port[,host:port...]`.
    """
    try:
        if env is None:
            load_env_file()
            return Settings()
        # explicit env: ignore the process environment and .env so tests are hermetic
        fields = {f.alias: f for f in Settings.model_fields.values() if f.alias}
        given = {k: v for k, v in env.items() if k in fields}
        return _ExplicitSettings(**given)
    except ValidationError as err:
        raise SettingsError(_describe(err, env if env is not None else os.environ)) from None


class _ExplicitSettings(Settings):
    """Settings read only from the values passed in (no environment, no .env)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):  # type: ignore[override]
        return (init_settings,)


def _describe(err: ValidationError, env: dict[str, str] | os._Environ[str]) -> str:
    lines = []
    aliases = {name: f.alias for name, f in Settings.model_fields.items()}
    for e in err.errors():
        loc = e["loc"][0] if e["loc"] else ""
        var = aliases.get(str(loc), str(loc)) if loc else "settings"
        msg = e["msg"].removeprefix("Value error, ")
        shown = env.get(var, "") if var and "PASSWORD" not in var else "***"
        lines.append(f"invalid setting {var}={shown!r}: {msg}" if loc else f"invalid settings: {msg}")
    return "; ".join(lines)
