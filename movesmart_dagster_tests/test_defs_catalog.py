"""`glue_tables` and `dev_smartcity` in their three modes.

- local: no Glue; `dev_smartcity` is a schema in the persistent DuckDB file under
  MOVESMART_HOME, and the seed's `select * from dev_smartcity.gps_data` runs on it;
- local endpoint: Glue served by a real moto server on a free loopback port gets the
  database, tables and `event_date` partitions (no `_spark_metadata`);
- Redshift: the only fake of the suite — a recording stand-in for the `redshift-data` client
  (there is no local Redshift), checking the CREATE EXTERNAL SCHEMA statement sent.
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
from movesmart_dagster.defs.resources import DuckDBResource, GlueResource, RedshiftResource, build_resources
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
    counts = land_simulated_days(home / "warehouse", datetime(2024, 4, 1, 9, tzinfo=UTC), max_events=400)
    (home / "warehouse" / "gps_data" / "_spark_metadata").mkdir()  # never catalogued, never read
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


def test_glue_tables_register_into_the_local_endpoint(tmp_path, monkeypatch, moto_endpoint):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    counts = land_simulated_days(home / "warehouse", datetime(2024, 4, 1, 22, tzinfo=UTC), max_events=800)
    (home / "warehouse" / "vehicle_data" / "_spark_metadata").mkdir()
    resources = {**build_resources(), "glue": GlueResource(s3_endpoint=moto_endpoint)}
    with dg.instance_for_test() as instance:
        result = _materialize(resources, instance)
        assert result.success
        meta = result.asset_materializations_for_node("catalog__glue_tables")[0].metadata
        assert meta["mode"].value == "local endpoint"
        assert meta["partitions_added"].value == sum(len(days) for days in counts.values())
        # a second run adds nothing
        again = _materialize(resources, instance)
        assert (
            again.asset_materializations_for_node("catalog__glue_tables")[0]
            .metadata["partitions_added"]
            .value
            == 0
        )
    glue = boto3.client("glue", endpoint_url=moto_endpoint, region_name="us-east-1")
    tables = {t["Name"] for t in glue.get_tables(DatabaseName="smartcity")["TableList"]}
    assert set(counts) <= tables
    parts = glue.get_partitions(DatabaseName="smartcity", TableName="vehicle_data")["Partitions"]
    assert sorted(p["Values"][0] for p in parts) == sorted(counts["vehicle_data"])


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


def test_warehouse_resource_lists_partitions_locally_and_on_s3(tmp_path, monkeypatch, moto_endpoint):
    from dagster_aws.s3 import S3Resource

    from movesmart_dagster.defs.resources import WarehouseResource

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    local = WarehouseResource(s3=S3Resource(region_name="us-east-1"))
    land_simulated_days(
        tmp_path / "home" / "warehouse", datetime(2024, 4, 1, 23, 30, tzinfo=UTC), max_events=800
    )
    (tmp_path / "home" / "warehouse" / "gps_data" / "event_date=2099-01-01").mkdir()  # no file: no partition
    assert local.list_partitions("gps_data") == ["2024-04-01", "2024-04-02"]
    assert local.local_path("gps_data") == tmp_path / "home" / "warehouse" / "gps_data"

    s3 = S3Resource(region_name="us-east-1", endpoint_url=moto_endpoint)
    client = s3.get_client()
    client.create_bucket(Bucket="movesmart-wh")
    for key in (
        "tables/gps_data/event_date=2024-04-01/part-0.parquet",
        "tables/gps_data/event_date=2024-04-02/part-0.parquet",
        "tables/gps_data/event_date=2024-04-03/_staging.parquet",  # hidden: not a partition
        "tables/gps_data/_spark_metadata/0",
    ):
        client.put_object(Bucket="movesmart-wh", Key=key, Body=b"x")
    remote = WarehouseResource(warehouse_uri="s3a://movesmart-wh/tables", s3=s3)
    assert remote.local_path("gps_data") is None
    assert remote.list_partitions("gps_data") == ["2024-04-01", "2024-04-02"]
