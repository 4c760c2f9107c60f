"""`movesmart_dagster.tables` and `movesmart query` over real Iceberg tables.

The tables are created and appended to with pyiceberg through the same catalog the job uses
(no Spark needed here); a failed attempt's Parquet file and a hidden file sit beside the
committed ones in the table's folder and must stay invisible: readers read the snapshot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movesmart_dagster.analytics.compute import OUTPUT_COLUMNS
from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, arrow_table_schema, duckdb_columns
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.tables import connect, list_files, list_partitions, register_views
from movesmart_dagster.tables.catalog import ensure_tables, load_table
from movesmart_dagster.tables.scan import local_path

TS = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _gps_rows(n: int, offset0: int, day: date = date(2024, 6, 3)) -> pa.Table:
    ts = datetime(day.year, day.month, day.day, 8, 0, tzinfo=UTC)
    rows = [
        {
            "id": f"id-{offset0 + i}",
            "deviceId": "vehicle-1",
            "timestamp": ts,
            "speed": float(i),
            "direction": "North",
            "vehicleType": "private",
            "kafka_topic": "gps_data",
            "kafka_partition": 0,
            "kafka_offset": offset0 + i,
            "kafka_timestamp": ts,
            "ingested_at": ts,
            PARTITION_COLUMN: day,
        }
        for i in range(n)
    ]
    schema = arrow_table_schema("gps_data").append(pa.field(PARTITION_COLUMN, pa.date32()))
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture()
def warehouse(tmp_path: Path) -> dict[str, str]:
    env = {"MOVESMART_HOME": str(tmp_path / "home")}
    settings = load_settings(env)
    ensure_tables(settings)
    gps = load_table(settings, "gps_data")
    gps.append(_gps_rows(3, 0, date(2024, 6, 3)))
    gps.append(_gps_rows(2, 3, date(2024, 6, 4)))
    # not data: a failed attempt's file among the committed ones (no snapshot lists it), a hidden file
    data_dir = Path(local_path(list_files(settings, "gps_data")[0])).parent
    pq.write_table(_gps_rows(5, 100), data_dir / "00000-0-failed-attempt.parquet")
    pq.write_table(_gps_rows(5, 200), data_dir / ".hidden.parquet")
    return env


def _append(settings: Settings, rows: pa.Table) -> None:
    load_table(settings, "gps_data").append(rows)


def test_views_read_the_current_snapshot_only(warehouse: dict[str, str]) -> None:
    settings = load_settings(warehouse)
    assert list_partitions(settings, "gps_data") == ["2024-06-03", "2024-06-04"]
    files = list_files(settings, "gps_data")
    assert len(files) == 2 and all(f.startswith(settings.warehouse) for f in files)
    con = connect(settings)
    try:
        assert con.execute("select count(*), count(distinct id) from gps_data").fetchone() == (5, 5)
        by_day = con.execute(
            "select event_date, count(*) from dev_smartcity.gps_data group by 1 order by 1"
        ).fetchall()
        assert by_day == [(date(2024, 6, 3), 3), (date(2024, 6, 4), 2)]
        ts = con.execute("select timestamp from gps_data limit 1").fetchone()[0]
        assert ts == TS
    finally:
        con.close()


def test_empty_tables_have_typed_views(warehouse: dict[str, str]) -> None:
    con = connect(load_settings(warehouse))
    try:
        for table in ALL_TABLES:
            for schema in ("main", "dev_smartcity"):
                cols = con.execute(
                    f"select column_name, column_type from (describe {schema}.{table})"
                ).fetchall()
                assert cols[:-1] == duckdb_columns(table)
                assert cols[-1] == (PARTITION_COLUMN, "DATE")
        assert con.execute("select count(*) from dev_smartcity.emergency_data").fetchone()[0] == 0
    finally:
        con.close()


def test_analytics_have_typed_views_before_their_first_day(warehouse: dict[str, str]) -> None:
    spark_to_duckdb = {
        "string": "VARCHAR",
        "bigint": "BIGINT",
        "double": "DOUBLE",
        "timestamp": "TIMESTAMP WITH TIME ZONE",
    }
    con = connect(load_settings(warehouse))
    try:
        for name, columns in OUTPUT_COLUMNS.items():
            for schema in ("main", "dev_smartcity"):
                cols = con.execute(
                    f"select column_name, column_type from (describe {schema}.{name})"
                ).fetchall()
                assert cols == [(c, spark_to_duckdb[t]) for c, t in columns] + [(PARTITION_COLUMN, "DATE")]
                assert con.execute(f"select count(*) from {schema}.{name}").fetchone()[0] == 0
    finally:
        con.close()


def test_no_catalog_yet_reads_as_empty_tables_and_creates_nothing(tmp_path: Path) -> None:
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "fresh")})
    con = connect(settings)
    try:
        assert con.execute("select count(*) from gps_data").fetchone()[0] == 0
    finally:
        con.close()
    assert not (tmp_path / "fresh").exists()


def test_views_are_pinned_to_a_snapshot_until_registered_again(warehouse: dict[str, str]) -> None:
    settings = load_settings(warehouse)
    con = connect(settings)
    try:
        _append(settings, _gps_rows(4, 50, date(2024, 6, 5)))
        # snapshot isolation: the view still reads the snapshot it was registered on
        assert con.execute("select count(*) from gps_data").fetchone()[0] == 5
        pinned = register_views(con, settings)
        assert pinned["gps_data"] == load_table(settings, "gps_data").current_snapshot().snapshot_id
        assert con.execute("select count(*) from dev_smartcity.gps_data").fetchone()[0] == 9
    finally:
        con.close()


def test_a_field_added_later_reads_as_null_in_older_files(
    warehouse: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from movesmart_dagster import schemas

    settings = load_settings(warehouse)
    extended = schemas.RecordSchema(
        "gps", (*schemas.GPS.fields, schemas.Field("accuracy", schemas.FieldType.DOUBLE)), schemas.GPS.doc
    )
    monkeypatch.setitem(schemas.RECORDS_BY_NAME, "gps", extended)
    assert ensure_tables(settings)["gps_data"] == "evolved"
    con = connect(settings)
    try:
        assert con.execute("select count(*), count(accuracy) from gps_data").fetchone() == (5, 0)
        assert ("accuracy", "DOUBLE") in con.execute(
            "select column_name, column_type from (describe gps_data)"
        ).fetchall()
    finally:
        con.close()


def _query(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "movesmart_dagster.cli", "query", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_query_cli_table_csv_json(warehouse: dict[str, str]) -> None:
    sql = "select id, speed, event_date from dev_smartcity.gps_data order by kafka_offset limit 2"
    table = _query(warehouse, sql)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[1].split() == ["|", "id", "|", "speed", "|", "event_date", "|"]
    assert "| id-0 | 0.0   | 2024-06-03 |" in table.stdout and "(2 rows)" in table.stdout
    csv_out = _query(warehouse, sql, "--format", "csv")
    assert csv_out.stdout.splitlines() == [
        "id,speed,event_date",
        "id-0,0.0,2024-06-03",
        "id-1,1.0,2024-06-03",
    ]
    js = _query(warehouse, sql, "--format", "json")
    assert json.loads(js.stdout)[1] == {"id": "id-1", "speed": 1.0, "event_date": "2024-06-03"}
    bad = _query(warehouse, "select nope from gps_data")
    assert bad.returncode == 1 and "nope" in bad.stderr


def test_query_cli_without_a_warehouse_names_where_it_looked(tmp_path: Path) -> None:
    home = tmp_path / "never-written"
    proc = _query({"MOVESMART_HOME": str(home)}, "select count(*) from gps_data")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"no warehouse at {home / 'warehouse'}: nothing was ever written there" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not home.exists()  # asking created nothing


def test_query_cli_on_an_existing_warehouse_with_an_empty_table(
    warehouse: dict[str, str], tmp_path: Path
) -> None:
    empty = _query(warehouse, "select count(*) as n from emergency_data", "--format", "csv")
    assert (empty.returncode, empty.stdout) == (0, "n\n0\n"), empty.stderr
    # a warehouse folder with nothing in it yet (the job started, no batch landed) is empty, not missing
    fresh = tmp_path / "fresh"
    (fresh / "warehouse").mkdir(parents=True)
    proc = _query({"MOVESMART_HOME": str(fresh)}, "select * from dev_smartcity.gps_data", "--format", "json")
    assert (proc.returncode, json.loads(proc.stdout)) == (0, []), proc.stderr


def test_s3_warehouse_missing_then_with_a_table_and_an_analytics_day(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on an s3a:// warehouse (moto's real S3 API): a prefix never written is
    missing; an Iceberg table and analytics days written there are views."""
    import boto3
    import pyarrow.fs as pafs

    from movesmart_dagster.tables import warehouse_exists

    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    }
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    env = {
        "MOVESMART_HOME": str(tmp_path / "home"),
        "MOVESMART_WAREHOUSE": "s3a://movesmart-query/warehouse",
        "MOVESMART_S3_ENDPOINT": moto_endpoint,
        "AWS_REGION": "us-east-1",
    }
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket="movesmart-query"
    )
    settings = load_settings(env)
    assert not warehouse_exists(settings)
    missing = _query(env, "select count(*) from gps_data")
    assert missing.returncode == 1
    assert "no warehouse at s3a://movesmart-query/warehouse: nothing was ever written there" in missing.stderr

    fs = pafs.S3FileSystem(
        endpoint_override=moto_endpoint.removeprefix("http://"), scheme="http", region="us-east-1"
    )
    root = "movesmart-query/warehouse"
    ensure_tables(settings)  # the Iceberg tables on S3, in the local catalog
    load_table(settings, "gps_data").append(_gps_rows(2, 0))
    arrow_of_spark = {
        "string": pa.string(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    columns = OUTPUT_COLUMNS["weather_summary"]
    hours = [TS, TS.replace(hour=9)]
    values = {"hour": hours, "readings": [3, 4], "main_condition": ["Rain", "Sunny"]}
    table = pa.table({c: pa.array(values.get(c, [1.5, 2.5]), arrow_of_spark[t]) for c, t in columns})
    pq.write_table(
        table,
        f"{root}/analytics/weather_summary/{PARTITION_COLUMN}=2024-06-03/part-00000.parquet",
        filesystem=fs,
    )
    assert warehouse_exists(settings)
    rows = _query(
        env,
        "select cast(event_date as varchar) as day, sum(readings) as readings from dev_smartcity.weather_summary group by 1",
        "--format",
        "json",
    )
    assert rows.returncode == 0, rows.stderr
    assert json.loads(rows.stdout) == [{"day": "2024-06-03", "readings": 7}]
    gps = _query(env, "select count(*) as n from gps_data", "--format", "csv")
    assert (gps.returncode, gps.stdout) == (0, "n\n2\n"), gps.stderr
