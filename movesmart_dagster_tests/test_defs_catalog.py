"""`glue_tables` (ensure the Iceberg tables) and `dev_smartcity` in their three modes.

- local: the SQLite Iceberg catalog; `dev_smartcity` is a schema in the persistent DuckDB file
  under MOVESMART_HOME over each table's current snapshot, and the seed's
  `select * from dev_smartcity.gps_data` runs on it;
- Glue (`MOVESMART_CATALOG=glue`) served by a real moto server on a free loopback port: the
  database holds the six tables as Glue tables of type ICEBERG (no partition registration);
- Redshift: a recording stand-in for the `redshift-data` client (a fake because no Redshift
  runs here; see test_catalog_redshift.py), checking the CREATE EXTERNAL SCHEMA statement sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import dagster as dg
import duckdb
import pytest

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.catalog.assets import catalog_assets
from movesmart_dagster.defs.keys import DEV_SMARTCITY_KEY, GLUE_TABLES_KEY
from movesmart_dagster.defs.resources import DuckDBResource, RedshiftResource, build_resources
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import load_settings
from movesmart_dagster_tests.test_analytics import land_simulated_days


def _materialize(resources: dict[str, Any], instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    assets = catalog_assets(load_settings())
    return dg.materialize(
        assets, resources=resources, instance=instance, selection=[GLUE_TABLES_KEY, DEV_SMARTCITY_KEY]
    )


def test_local_mode_creates_dev_smartcity_in_duckdb(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    counts = land_simulated_days(home, datetime(2024, 4, 1, 9, tzinfo=UTC), max_events=400)
    orphan = home / "warehouse" / "smartcity" / "gps_data" / "data" / "failed-attempt.parquet"
    orphan.write_bytes(b"not part of any snapshot")  # never read: readers read the snapshot
    with dg.instance_for_test() as instance:
        result = _materialize(build_resources(), instance)
        assert result.success
        glue = result.asset_materializations_for_node("catalog__glue_tables")[0].metadata
        assert glue["mode"].value == "local"
        schema = result.asset_materializations_for_node("catalog__dev_smartcity")[0].metadata
        assert schema["mode"].value == "duckdb"
    con = duckdb.connect(str(home / "movesmart.duckdb"), read_only=True)
    try:
        (n,) = con.execute("select count(*) from dev_smartcity.gps_data").fetchone()
        assert n == sum(counts["gps_data"].values())
        row = con.execute("select * from dev_smartcity.gps_data limit 1").fetchone()
        assert row is not None
    finally:
        con.close()
    # the seed's query, unchanged, through `movesmart query`
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "movesmart_dagster.cli",
            "query",
            "select count(*) as n from dev_smartcity.gps_data",
            "--format",
            "json",
        ],
        env={**os.environ, "MOVESMART_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": n}]


@pytest.fixture
def moto_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    # the local endpoint accepts any key; these are not credentials of any account
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("MOVESMART_S3_ENDPOINT", f"http://{host}:{port}")
    yield f"http://{host}:{port}"
    server.stop()


def test_glue_tables_ensures_iceberg_tables_in_glue(tmp_path, monkeypatch, moto_endpoint):
    bucket = f"movesmart-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOVESMART_CATALOG", "glue")
    monkeypatch.setenv("MOVESMART_WAREHOUSE", f"s3a://{bucket}/warehouse")
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    counts = land_simulated_days(tmp_path / "home", datetime(2024, 4, 1, 22, tzinfo=UTC), max_events=800)
    with dg.instance_for_test() as instance:
        result = _materialize(build_resources(), instance)
        assert result.success
        meta = result.asset_materializations_for_node("catalog__glue_tables")[0].metadata
        assert meta["mode"].value == "glue" and meta["created"].value == 0  # the landing created them
        table = meta["tables"].value
        rows = sum(counts["vehicle_data"].values())
        assert "| vehicle_data | unchanged |" in table and f"| {rows} |" in table
    glue = boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1")
    tables = glue.get_tables(DatabaseName="smartcity")["TableList"]
    assert sorted(t["Name"] for t in tables) == sorted(ALL_TABLES)
    assert all(t["Parameters"]["table_type"].upper() == "ICEBERG" for t in tables)
    assert not glue.get_partitions(DatabaseName="smartcity", TableName="vehicle_data")["Partitions"]


class RecordingRedshiftData:
    """FAKE redshift-data client (no local Redshift exists): records statements, reports FINISHED."""

    def __init__(self) -> None:
        self.statements: list[dict[str, Any]] = []

    def execute_statement(self, **kwargs: Any) -> dict[str, str]:
        self.statements.append(kwargs)
        return {"Id": str(uuid.uuid4())}

    def describe_statement(self, Id: str) -> dict[str, str]:  # noqa: N803 - boto3's argument name
        return {"Id": Id, "Status": "FINISHED"}


def test_dev_smartcity_in_aws_mode_runs_create_external_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MOVESMART_REDSHIFT_WORKGROUP", "movesmart")
    monkeypatch.setenv("MOVESMART_REDSHIFT_IAM_ROLE", "arn:aws:iam::123456789012:role/movesmart-spectrum")
    fake = RecordingRedshiftData()

    class FakeClientRedshift(RedshiftResource):
        def client(self) -> Any:
            return fake

    resources = {**build_resources(), "redshift": FakeClientRedshift(), "duckdb": DuckDBResource()}
    with dg.instance_for_test() as instance:
        result = _materialize(resources, instance)
        assert result.success
        meta = result.asset_materializations_for_node("catalog__dev_smartcity")[0].metadata
        assert meta["mode"].value == "redshift"
    (sent,) = fake.statements
    sql = " ".join(sent["Sql"].split())
    assert sql.startswith(
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS dev_smartcity FROM DATA CATALOG DATABASE 'smartcity'"
    )
    assert "IAM_ROLE 'arn:aws:iam::123456789012:role/movesmart-spectrum'" in sql
    assert sent["WorkgroupName"] == "movesmart" and sent["Database"] == "dev"


def test_catalog_job_is_defined_with_both_assets():
    job = defs.get_job_def("catalog_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "catalog/glue_tables",
        "catalog/dev_smartcity",
    }


def test_warehouse_resource_lists_the_days_of_the_current_snapshot(tmp_path, monkeypatch):
    from dagster_aws.s3 import S3Resource

    from movesmart_dagster.defs.resources import WarehouseResource

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    local = WarehouseResource(s3=S3Resource(region_name="us-east-1"))
    assert local.list_partitions("gps_data") == []  # no catalog yet: nothing, and nothing created
    land_simulated_days(tmp_path / "home", datetime(2024, 4, 1, 23, 30, tzinfo=UTC), max_events=800)
    stray = tmp_path / "home" / "warehouse" / "smartcity" / "gps_data" / "data" / "event_day=2099-01-01"
    stray.mkdir(parents=True)  # a folder no snapshot references: not a day of the table
    assert local.list_partitions("gps_data") == ["2024-04-01", "2024-04-02"]
    assert local.local_path("gps_data") == tmp_path / "home" / "warehouse" / "gps_data"
