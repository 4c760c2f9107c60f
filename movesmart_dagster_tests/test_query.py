"""`movesmart_dagster.tables` and `movesmart query` over a warehouse of real Parquet files.

The files are written with pyarrow in the job's layout (no Spark needed here); staging
and hidden files sit beside them and must stay invisible.
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

from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, arrow_table_schema, duckdb_columns
from movesmart_dagster.settings import load_settings
from movesmart_dagster.tables import connect, list_files, list_partitions, table_uri

TS = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _gps_rows(n: int, offset0: int) -> pa.Table:
    rows = [
        {
            "id": f"id-{offset0 + i}",
            "deviceId": "vehicle-1",
            "timestamp": TS,
            "speed": float(i),
            "direction": "North",
            "vehicleType": "private",
            "kafka_topic": "gps_data",
            "kafka_partition": 0,
            "kafka_offset": offset0 + i,
            "kafka_timestamp": TS,
            "ingested_at": TS,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=arrow_table_schema("gps_data"))


@pytest.fixture()
def warehouse(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "home" / "warehouse"
    for day, n, off in (("2024-06-03", 3, 0), ("2024-06-04", 2, 3)):
        d = root / "gps_data" / f"{PARTITION_COLUMN}={day}"
        d.mkdir(parents=True)
        pq.write_table(_gps_rows(n, off), d / "part-x-b0000000000-00000-000.zstd.parquet")
    # not data: a batch in staging, a hidden file, a manifest
    staged = root / "gps_data" / "_staging" / "batch=1" / f"{PARTITION_COLUMN}=2024-06-03"
    staged.mkdir(parents=True)
    pq.write_table(_gps_rows(5, 100), staged / "part-00000-abc.c000.zstd.parquet")
    pq.write_table(
        _gps_rows(5, 200), root / "gps_data" / f"{PARTITION_COLUMN}=2024-06-03" / ".hidden.parquet"
    )
    (root / "_manifests").mkdir()
    return {"MOVESMART_HOME": str(tmp_path / "home")}


def test_views_see_only_final_files(warehouse: dict[str, str]) -> None:
    settings = load_settings(warehouse)
    assert list_partitions(settings, "gps_data") == ["2024-06-03", "2024-06-04"]
    assert len(list_files(settings, "gps_data")) == 2
    assert table_uri(settings, "gps_data").endswith("/warehouse/gps_data")
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


def test_new_files_show_up_without_reconnecting(warehouse: dict[str, str]) -> None:
    settings = load_settings(warehouse)
    con = connect(settings)
    try:
        d = Path(settings.warehouse.removeprefix("file://")) / "gps_data" / f"{PARTITION_COLUMN}=2024-06-05"
        d.mkdir()
        pq.write_table(_gps_rows(4, 50), d / "part-x-b0000000001-00000-000.zstd.parquet")
        assert con.execute("select count(*) from gps_data").fetchone()[0] == 9
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
