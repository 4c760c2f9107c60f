"""The tables as readers see them: the Iceberg catalog, current snapshots, and DuckDB views.

`connect(settings)` is the one way to query the tables from Python (the `movesmart query`
command, Dagster's DuckDB resource, checks, tests); `catalog` defines the tables and the
catalog both Spark and pyiceberg open.
"""

from movesmart_dagster.tables.duck import SCHEMAS, connect, register_views
from movesmart_dagster.tables.scan import list_files, list_partitions
from movesmart_dagster.tables.warehouse import warehouse_exists, warehouse_location

__all__ = [
    "SCHEMAS",
    "connect",
    "list_files",
    "list_partitions",
    "register_views",
    "warehouse_exists",
    "warehouse_location",
]
