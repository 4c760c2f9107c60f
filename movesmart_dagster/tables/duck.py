"""DuckDB over the tables: one view per table, in `main` and in `dev_smartcity`.

Why views in two schemas: the seed's users query `select * from dev_smartcity.gps_data`
in Redshift; the same SQL works here unchanged, and so does the short `gps_data`.

Each view reads the data files of its table's current Iceberg snapshot (`scan.current`: the
catalog's scan plan), so it sees whole batches only, never a failed attempt's files. It is
pinned to that snapshot: `register_views` again (every `movesmart query` does, every `connect`)
sees newer batches. Local files are read by DuckDB's `read_parquet`; on S3 a pyarrow dataset
over the same files (pyarrow's S3 client: DuckDB's httpfs would be downloaded at run time).
A column schemas.py gained after the files were written reads as NULL. A table without a
snapshot yet is an empty view with the right columns (from `schemas.duckdb_columns`), so
queries and checks bind before the first batch lands.

The daily analytics (plain Parquet, `analytics/<name>/event_date=*/`, written by Spark) get views
named like them in the same schemas, with the columns `analytics.compute.OUTPUT_COLUMNS` declares
(cast, so a day written before the analytics wrote UTC INT64 timestamps reads the same).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.analytics.compute import OUTPUT_COLUMNS, output_table
from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, arrow_table_schema, duckdb_columns
from movesmart_dagster.settings import Settings
from movesmart_dagster.tables.scan import (
    Snapshot,
    arrow_filesystem,
    arrow_path,
    current,
    local_path,
    reader_catalog,
)
from movesmart_dagster.tables.warehouse import arrow_filesystem as warehouse_filesystem
from movesmart_dagster.tables.warehouse import list_output_files, local_root

if TYPE_CHECKING:
    import duckdb

SCHEMAS: tuple[str, ...] = ("main", "dev_smartcity")
# Spark's simple type names in analytics.compute.OUTPUT_COLUMNS -> DuckDB
_DUCKDB_OF_SPARK = {
    "string": "VARCHAR",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _columns(table: str) -> list[tuple[str, str]]:
    return [*duckdb_columns(table), (PARTITION_COLUMN, "DATE")]


def _empty_select(table: str) -> str:
    cols = [f"CAST(NULL AS {t}) AS {_q(n)}" for n, t in _columns(table)]
    return f"SELECT {', '.join(cols)} WHERE false"


def _column_list(table: str, present: set[str]) -> str:
    return ", ".join(_q(n) if n in present else f"CAST(NULL AS {t}) AS {_q(n)}" for n, t in _columns(table))


def _local_select(snap: Snapshot) -> str:
    files = ", ".join("'" + local_path(f).replace("'", "''") + "'" for f in snap.files)
    return (
        f"SELECT {_column_list(snap.table, snap.columns)} FROM read_parquet([{files}], union_by_name = true)"
    )


def _s3_dataset(settings: Settings, snap: Snapshot) -> object:
    import pyarrow as pa
    import pyarrow.dataset as ds

    schema = arrow_table_schema(snap.table).append(pa.field(PARTITION_COLUMN, pa.date32()))
    return ds.dataset(
        [arrow_path(f) for f in snap.files],
        schema=schema,
        filesystem=arrow_filesystem(settings),
        format="parquet",
    )


def _analytics_columns(name: str) -> list[tuple[str, str]]:
    return [(c, _DUCKDB_OF_SPARK[t]) for c, t in OUTPUT_COLUMNS[name]]


def _analytics_select(con: duckdb.DuckDBPyConnection, settings: Settings, name: str) -> str:
    """The view of one analytics result: its declared columns over whatever days are written."""
    columns = _analytics_columns(name)
    location = output_table(name)
    files = list_output_files(settings, location)
    if not files:
        cols = [f"CAST(NULL AS {t}) AS {_q(c)}" for c, t in columns]
        return f"SELECT {', '.join(cols)}, CAST(NULL AS DATE) AS {PARTITION_COLUMN} WHERE false"
    if settings.warehouse_is_s3:
        import pyarrow as pa
        import pyarrow.dataset as ds

        fs, root = warehouse_filesystem(settings)
        source = f"__arrow_{name}"
        con.register(
            source,
            ds.dataset(
                files,
                filesystem=fs,
                format="parquet",
                partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive"),
                partition_base_dir=f"{root}/{location}",
            ),
        )
        source = _q(source)
    else:
        glob = f"{local_root(settings)}/{location}/{PARTITION_COLUMN}=*/[!._]*.parquet".replace("'", "''")
        source = (
            f"read_parquet('{glob}', hive_partitioning = true, "
            f"hive_types = {{'{PARTITION_COLUMN}': DATE}}, union_by_name = true)"
        )
    cols = [f"CAST({_q(c)} AS {t}) AS {_q(c)}" for c, t in columns]
    return f"SELECT {', '.join(cols)}, {PARTITION_COLUMN} FROM {source}"


def register_views(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    schemas: tuple[str, ...] = SCHEMAS,
    day: str | None = None,
) -> dict[str, int | None]:
    """(Re)create one view per table (over its current snapshot) and per analytics result in
    each schema; returns the snapshot id each table's view reads (None: no snapshot yet).

    With `day`, each table's view holds only the files of that day's partition (the scan plan
    prunes by partition, so its cost follows the day's data, not the table's history); the
    per-day checks read through these."""
    for schema in schemas:
        if schema != "main":
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
    catalog = reader_catalog(settings)
    pinned: dict[str, int | None] = {}
    selects: dict[str, str] = {}
    for table in ALL_TABLES:
        snap = (
            current(settings, table, catalog, day)
            if catalog is not None
            else Snapshot(table, None, [], set(), [])
        )
        pinned[table] = snap.snapshot_id
        if not snap.files:
            selects[table] = _empty_select(table)
        elif settings.warehouse_is_s3:
            source = f"__arrow_{table}"
            con.register(source, _s3_dataset(settings, snap))
            selects[table] = (
                f"SELECT {_column_list(table, {n for n, _ in _columns(table)})} FROM {_q(source)}"
            )
        else:
            selects[table] = _local_select(snap)
    for name in OUTPUT_COLUMNS:
        selects[name] = _analytics_select(con, settings, name)
    for view, select in selects.items():
        for schema in schemas:
            con.execute(f"CREATE OR REPLACE VIEW {_q(schema)}.{_q(view)} AS {select}")
    return pinned


def connect(
    settings: Settings, database: str = ":memory:", read_only: bool = False, day: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the table views registered (session time zone UTC); with
    `day`, views over that day's partition only."""
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        register_views(con, settings, day=day)
    return con
