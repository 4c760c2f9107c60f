"""Every query of `sql/examples.sql` runs on real Parquet tables laid out like the warehouse.

Redshift cannot run here, so the queries are executed by DuckDB over the same layout the
streaming job writes (`<table>/event_date=YYYY-MM-DD/*.parquet`, plus `_spark_metadata`
that must be ignored), through a `dev_smartcity` schema of views — what `movesmart query`
offers locally. The queries are written in the SQL common to both engines, so a query
that breaks here would break in Redshift too (the reverse cannot be checked here).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from movesmart_dagster import schemas
from movesmart_dagster.catalog.redshift import example_queries

_T0 = datetime(2024, 1, 1, 23, 30, tzinfo=UTC)


def _value(name: str, hive: str, i: int) -> Any:
    if hive == "string":
        choices = {
            "status": ("Active", "Resolved"),
            "type": ("Accident", "Fire", "Medical"),
            "vehicleType": ("private", "bus"),
        }
        return choices.get(name, (f"{name}-{i % 4}",))[i % len(choices.get(name, ("",)))]
    if hive == "double":
        return float(10 + i)
    if hive == "int":
        return 2000 + i
    if hive == "bigint":
        return i
    if hive == "timestamp":
        return _T0 + timedelta(minutes=15 * i)
    if hive == "binary":
        return b"{not json"
    return {"latitude": 51.5 + i / 100, "longitude": -0.1 - i / 100}


def write_warehouse(root: Path, rows: int = 8) -> None:
    for table in schemas.ALL_TABLES:
        arrow_schema = schemas.arrow_table_schema(table)
        cols = schemas.columns_for_table(table)
        data = {n: [_value(n, t, i) for i in range(rows)] for n, t in cols}
        batch = pa.table(data, schema=arrow_schema)
        for day in ("2024-01-01", "2024-01-02"):
            folder = root / table / f"event_date={day}"
            folder.mkdir(parents=True)
            pq.write_table(batch, folder / "part-00000.zstd.parquet")
        (root / table / "_spark_metadata").mkdir()
        (root / table / "_spark_metadata" / "0").write_text("v1\n{}")


def test_every_example_query_runs(tmp_path: Path) -> None:
    root = tmp_path / "warehouse"
    write_warehouse(root)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA dev_smartcity")
    for table in schemas.ALL_TABLES:
        files = (root / table / "event_date=*" / "*.parquet").as_posix()
        con.execute(
            f"CREATE VIEW dev_smartcity.{table} AS "
            f"SELECT * FROM read_parquet('{files}', hive_partitioning = true)"
        )
    results = {q: con.execute(q).fetchall() for q in example_queries()}

    seed = results["select * from dev_smartcity.gps_data;"]
    assert len(seed) == 16  # 8 rows x 2 days; _spark_metadata ignored
    for query, rows in results.items():
        assert rows, f"no rows from: {query}"
