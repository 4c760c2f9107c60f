"""Glue catalog sync against moto's real HTTP server (S3 and Glue on one loopback port).

Nothing is mocked: objects are written with boto3 to the endpoint, the catalog is read
back through the Glue API. Every test uses its own bucket and database, so the tests are
independent while sharing one server. AWS credentials are dummies set in the environment
only (moto accepts any); a local ~/.aws is never read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from movesmart_dagster import schemas
from movesmart_dagster.catalog import glue
from movesmart_dagster.catalog.glue import (
    CatalogError,
    GlueCatalog,
    discover_partitions,
    sync_catalog,
    table_location,
)
from movesmart_dagster.settings import REPO_ROOT, Settings, load_settings


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Dummy credentials, only through the environment; no profile or config file is read."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    return env


@pytest.fixture
def s3_settings(moto_endpoint: str, aws_env: dict[str, str], tmp_path: Path) -> Settings:
    """An s3a:// warehouse in a fresh bucket and a fresh Glue database name."""
    suffix = uuid.uuid4().hex[:10]
    bucket = f"movesmart-test-{suffix}"
    settings = load_settings(
        {
            "MOVESMART_HOME": str(tmp_path / "home"),
            "MOVESMART_WAREHOUSE": f"s3a://{bucket}/warehouse",
            "MOVESMART_S3_ENDPOINT": moto_endpoint,
            "MOVESMART_GLUE_DATABASE": f"smartcity_{suffix}",
            "AWS_REGION": "us-east-1",
        }
    )
    s3(settings).create_bucket(Bucket=bucket)
    return settings


def s3(settings: Settings) -> Any:
    return boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name=settings.aws_region)


def put(settings: Settings, *keys: str) -> None:
    """Write objects under the warehouse prefix (bytes are irrelevant to the catalog)."""
    client = s3(settings)
    prefix = settings.warehouse.split("/", 3)[3]
    for key in keys:
        client.put_object(Bucket=settings.warehouse_bucket, Key=f"{prefix}/{key}", Body=b"PAR1")


def glue_table(settings: Settings, table: str) -> dict[str, Any]:
    catalog = GlueCatalog.from_settings(settings)
    return catalog.client.get_table(DatabaseName=settings.glue_database, Name=table)["Table"]


def test_from_settings_points_glue_at_the_local_endpoint(s3_settings: Settings) -> None:
    catalog = GlueCatalog.from_settings(s3_settings)
    assert catalog.client.meta.endpoint_url == s3_settings.s3_endpoint
    assert catalog.client.meta.region_name == "us-east-1"


def test_sync_creates_database_tables_and_partitions(s3_settings: Settings) -> None:
    put(
        s3_settings,
        "gps_data/event_date=2024-01-01/part-00000-a.zstd.parquet",
        "gps_data/event_date=2024-01-02/part-00000-b.zstd.parquet",
        "vehicle_data/event_date=2024-01-02/part-00000-c.zstd.parquet",
    )
    result = sync_catalog(s3_settings)

    assert set(result) == set(schemas.ALL_TABLES)
    assert all(r["table"] == "created" for r in result.values())
    assert result["gps_data"]["added"] == ["2024-01-01", "2024-01-02"]
    assert result["vehicle_data"]["added"] == ["2024-01-02"]
    assert result["weather_data"]["added"] == []

    client = GlueCatalog.from_settings(s3_settings).client
    assert client.get_database(Name=s3_settings.glue_database)["Database"]["Name"] == (
        s3_settings.glue_database
    )
    names = {t["Name"] for t in client.get_tables(DatabaseName=s3_settings.glue_database)["TableList"]}
    assert names == set(schemas.ALL_TABLES)

    table = glue_table(s3_settings, "gps_data")
    sd = table["StorageDescriptor"]
    bucket = s3_settings.warehouse_bucket
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["Parameters"]["classification"] == "parquet"
    assert table["PartitionKeys"] == [{"Name": "event_date", "Type": "string"}]
    assert sd["Location"] == f"s3://{bucket}/warehouse/gps_data/"  # s3://, never s3a://
    assert sd["SerdeInfo"]["SerializationLibrary"] == glue.PARQUET_SERDE
    assert sd["InputFormat"] == glue.PARQUET_INPUT_FORMAT
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == schemas.columns_for_table("gps_data")

    quarantine = glue_table(s3_settings, "quarantine")["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in quarantine] == [n for n, _ in schemas.QUARANTINE_COLUMNS]

    partition = client.get_partition(
        DatabaseName=s3_settings.glue_database, TableName="gps_data", PartitionValues=["2024-01-01"]
    )["Partition"]
    assert partition["StorageDescriptor"]["Location"] == (
        f"s3://{bucket}/warehouse/gps_data/event_date=2024-01-01/"
    )
    assert partition["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == glue.PARQUET_SERDE


def test_sync_is_idempotent_and_follows_new_days(s3_settings: Settings) -> None:
    put(s3_settings, "gps_data/event_date=2024-03-01/part-0.parquet")
    first = sync_catalog(s3_settings, tables=("gps_data",))
    assert first["gps_data"] == {"table": "created", "added": ["2024-03-01"]}

    again = sync_catalog(s3_settings, tables=("gps_data",))
    assert again["gps_data"] == {"table": "unchanged", "added": []}

    # a new day lands (and a new file in an existing day): only the new day is added
    put(
        s3_settings,
        "gps_data/event_date=2024-03-01/part-1.parquet",
        "gps_data/event_date=2024-03-02/part-0.parquet",
    )
    later = sync_catalog(s3_settings, tables=("gps_data",))
    assert later["gps_data"] == {"table": "unchanged", "added": ["2024-03-02"]}
    catalog = GlueCatalog.from_settings(s3_settings)
    assert catalog.list_partitions(s3_settings.glue_database, "gps_data") == ["2024-03-01", "2024-03-02"]


def test_metadata_staging_and_checkpoints_are_never_catalogued(s3_settings: Settings) -> None:
    put(
        s3_settings,
        "gps_data/event_date=2024-05-01/part-0.parquet",
        "gps_data/_spark_metadata/0",
        "gps_data/_spark_metadata/1.compact",
        "gps_data/_staging/event_date=2024-05-02/part-0.parquet",
        "gps_data/.tmp/event_date=2024-05-03/part-0.parquet",
        "gps_data/event_date=2024-05-04/_temporary/0/part-0.parquet",  # failed batch only
        "gps_data/event_date=2024-05-05/.part-0.parquet.crc",
        "_checkpoints/gps_data/offsets/0",
        "_checkpoints/gps_data/commits/0",
        "_staging/gps_data/event_date=2024-05-06/part-0.parquet",
    )
    assert discover_partitions(s3_settings, "gps_data") == ["2024-05-01"]
    result = sync_catalog(s3_settings)
    assert result["gps_data"]["added"] == ["2024-05-01"]

    client = GlueCatalog.from_settings(s3_settings).client
    names = {t["Name"] for t in client.get_tables(DatabaseName=s3_settings.glue_database)["TableList"]}
    assert not {n for n in names if n.startswith(("_", "."))}
    parts = client.get_partitions(DatabaseName=s3_settings.glue_database, TableName="gps_data")
    locations = [p["StorageDescriptor"]["Location"] for p in parts["Partitions"]]
    assert len(locations) == 1
    assert "/_" not in locations[0] and "/." not in locations[0]
    with pytest.raises(CatalogError, match="hidden"):
        discover_partitions(s3_settings, "_checkpoints")


def test_a_changed_schema_updates_the_table(s3_settings: Settings) -> None:
    catalog = GlueCatalog.from_settings(s3_settings)
    database = s3_settings.glue_database
    location = table_location(s3_settings, "weather_data")
    catalog.ensure_database(database)
    old = glue.table_input("weather_data", location)
    old["StorageDescriptor"]["Columns"] = old["StorageDescriptor"]["Columns"][:3]  # an older schema
    catalog.client.create_table(DatabaseName=database, TableInput=old)

    assert catalog.ensure_table(database, "weather_data", location) == "updated"
    columns = glue_table(s3_settings, "weather_data")["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns] == schemas.columns_for_table("weather_data")
    assert catalog.ensure_table(database, "weather_data", location) == "unchanged"
    assert catalog.ensure_database(database) is False


def test_partitions_are_added_in_batches_of_100(s3_settings: Settings) -> None:
    catalog = GlueCatalog.from_settings(s3_settings)
    database = s3_settings.glue_database
    location = table_location(s3_settings, "traffic_data")
    catalog.ensure_database(database)
    catalog.ensure_table(database, "traffic_data", location)

    calls: list[int] = []
    catalog.client.meta.events.register(
        "provide-client-params.glue.BatchCreatePartition",
        lambda params, **_: calls.append(len(params["PartitionInputList"])),
    )
    values = [f"2023-{m:02d}-{d:02d}" for m in range(1, 10) for d in range(1, 29)][:250]
    added = catalog.sync_partitions(database, "traffic_data", location, values)
    assert added == sorted(values)
    assert calls == [100, 100, 50]
    assert catalog.list_partitions(database, "traffic_data") == sorted(values)
    assert catalog.sync_partitions(database, "traffic_data", location, values) == []
    assert calls == [100, 100, 50]  # nothing left to send


def test_local_warehouse_discovery(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    settings = load_settings({"MOVESMART_HOME": str(tmp_path), "MOVESMART_WAREHOUSE": warehouse.as_uri()})
    gps = warehouse / "gps_data"
    for rel in (
        "event_date=2024-02-01/part-0.parquet",
        "event_date=2024-02-02/part-0.parquet",
        "_spark_metadata/0",
        "_staging/event_date=2024-02-03/part-0.parquet",
        ".hidden/event_date=2024-02-04/part-0.parquet",
        "event_date=2024-02-05/_temporary/part-0.parquet",
    ):
        (gps / rel).parent.mkdir(parents=True, exist_ok=True)
        (gps / rel).write_bytes(b"PAR1")
    (gps / "event_date=2024-02-06").mkdir()  # empty: nothing to read yet
    assert discover_partitions(settings, "gps_data") == ["2024-02-01", "2024-02-02"]
    assert discover_partitions(settings, "gps_data", known={"2024-02-06"}) == [
        "2024-02-01",
        "2024-02-02",
        "2024-02-06",
    ]
    assert discover_partitions(settings, "weather_data") == []  # no folder yet
    assert table_location(settings, "gps_data") == f"{warehouse.as_uri()}/gps_data/"


def test_catalog_command_syncs_against_the_endpoint(s3_settings: Settings, aws_env: dict[str, str]) -> None:
    put(s3_settings, "emergency_data/event_date=2024-06-01/part-0.parquet")
    env = {
        **os.environ,
        **aws_env,
        "MOVESMART_HOME": str(s3_settings.home_dir),
        "MOVESMART_WAREHOUSE": s3_settings.warehouse,
        "MOVESMART_S3_ENDPOINT": str(s3_settings.s3_endpoint),
        "MOVESMART_GLUE_DATABASE": s3_settings.glue_database,
    }
    cmd = [sys.executable, "-m", "movesmart_dagster.catalog", "sync"]
    out = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    db = s3_settings.glue_database
    assert f"{db}.emergency_data: table created, 1 partition(s) added" in out.stdout
    assert f"{db}.gps_data: table created, 0 partition(s) added" in out.stdout
    again = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert f"{db}.emergency_data: table unchanged, 0 partition(s) added" in again.stdout
