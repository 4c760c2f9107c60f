"""DuckDB over the warehouse: one view per table, in `main` and in `dev_smartcity`.

Why views in two schemas: the seed's users query `select * from dev_smartcity.gps_data`
in Redshift; the same SQL works here unchanged, and so does the short `gps_data`.

Local warehouses: each view reads `<table>/event_date=*/*.parquet` with hive partitioning,
so the glob is expanded at query time and new files show up without reconnecting; the
glob never descends into `_staging`/`_manifests`. S3 warehouses: each view is over a pyarrow
dataset listed when the view is (re)registered — call `register_views` again to see newer
files. A table without files yet still has a view, empty, with the right columns (from
`schemas.duckdb_columns`), so queries and checks bind before the first batch lands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, arrow_table_schema, duckdb_columns
from movesmart_dagster.settings import Settings
from movesmart_dagster.tables.warehouse import arrow_filesystem, list_files, local_root

if TYPE_CHECKING:
    import duckdb

SCHEMAS: tuple[str, ...] = ("main", "dev_smartcity")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty_select(table: str) -> str:
    cols = [f"CAST(NULL AS {t}) AS {_q(n)}" for n, t in duckdb_columns(table)]
    return f"SELECT {', '.join(cols)}, CAST(NULL AS DATE) AS {PARTITION_COLUMN} WHERE false"


def _column_list(table: str) -> str:
    return ", ".join([*(_q(n) for n, _ in duckdb_columns(table)), PARTITION_COLUMN])


def _local_select(settings: Settings, table: str) -> str:
    if not list_files(settings, table):
        return _empty_select(table)
    glob = f"{local_root(settings)}/{table}/{PARTITION_COLUMN}=*/[!._]*.parquet".replace("'", "''")
    return (
        f"SELECT {_column_list(table)} FROM read_parquet('{glob}', hive_partitioning = true, "
        f"hive_types = {{'{PARTITION_COLUMN}': DATE}}, union_by_name = true)"
    )


def _s3_dataset(settings: Settings, table: str) -> object | None:
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = list_files(settings, table)
    if not files:
        return None
    fs, root = arrow_filesystem(settings)
    schema = arrow_table_schema(table).append(pa.field(PARTITION_COLUMN, pa.date32()))
    return ds.dataset(
        files,
        schema=schema,
        filesystem=fs,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.date32())]), flavor="hive"),
        partition_base_dir=f"{root}/{table}",
    )


def register_views(
    con: duckdb.DuckDBPyConnection, settings: Settings, schemas: tuple[str, ...] = SCHEMAS
) -> None:
    """(Re)create one view per table in each schema."""
    for schema in schemas:
        if schema != "main":
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(schema)}")
    for table in ALL_TABLES:
        if settings.warehouse_is_s3:
            dataset = _s3_dataset(settings, table)
            if dataset is None:
                select = _empty_select(table)
            else:
                source = f"__arrow_{table}"
                con.register(source, dataset)
                select = f"SELECT {_column_list(table)} FROM {_q(source)}"
        else:
            select = _local_select(settings, table)
        for schema in schemas:
            con.execute(f"CREATE OR REPLACE VIEW {_q(schema)}.{_q(table)} AS {select}")


def connect(
    settings: Settings, database: str = ":memory:", read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the table views registered (session time zone UTC)."""
    import duckdb

    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        register_views(con, settings)
    return con
