"""Every query of `sql/examples.sql` runs on real Iceberg tables in the job's catalog.

Redshift cannot run here, so the queries are executed by DuckDB over each table's current
snapshot (pyiceberg's scan plan; a stray Parquet file of a failed attempt in the table's
data folder must be ignored), through a `dev_smartcity` schema of views — what `movesmart query`
offers locally. The queries are written in the SQL common to both engines, so a query
that breaks here would break in Redshift too (the reverse cannot be checked here).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from movesmart_dagster import schemas
from movesmart_dagster.catalog.redshift import example_queries
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.tables import connect

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


def write_tables(settings: Settings, rows: int = 8) -> None:
    """Two days of `rows` rows per table, one pyiceberg append each, through the job's catalog;
    plus a stray Parquet file in each table's data folder that no snapshot references."""
    from movesmart_dagster.tables.catalog import ensure_tables, load_table

    ensure_tables(settings)
    for table in schemas.ALL_TABLES:
        arrow_schema = schemas.arrow_table_schema(table).append(
            pa.field(schemas.PARTITION_COLUMN, pa.date32())
        )
        cols = schemas.columns_for_table(table)
        iceberg = load_table(settings, table)
        for day in (date(2024, 1, 1), date(2024, 1, 2)):
            data = {n: [_value(n, t, i) for i in range(rows)] for n, t in cols}
            time_column = "kafka_timestamp" if table == schemas.QUARANTINE_TABLE else "timestamp"
            data[time_column] = [datetime(day.year, day.month, day.day, 8, tzinfo=UTC)] * rows
            data[schemas.PARTITION_COLUMN] = [day] * rows
            iceberg.append(pa.table(data, schema=arrow_schema))
        stray = Path(iceberg.location().removeprefix("file://")) / "data" / "failed-attempt.parquet"
        pq.write_table(pa.table(data, schema=arrow_schema), stray)


def test_every_example_query_runs(tmp_path: Path) -> None:
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    write_tables(settings)
    con = connect(settings)  # what `movesmart query` reads: the current snapshots
    results = {q: con.execute(q).fetchall() for q in example_queries()}

    seed = results["select * from dev_smartcity.gps_data;"]
    assert len(seed) == 16  # 8 rows x 2 days; the stray file in no snapshot is not read
    for query, rows in results.items():
        assert rows, f"no rows from: {query}"
