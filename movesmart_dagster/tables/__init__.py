"""The warehouse's tables as readers see them: paths, partitions, and DuckDB views.

`connect(settings)` is the one way to query the tables from Python (the `movesmart query`
command, Dagster's DuckDB resource, checks, tests).
"""

from movesmart_dagster.tables.duck import SCHEMAS, connect, register_views
from movesmart_dagster.tables.warehouse import (
    arrow_filesystem,
    list_files,
    list_partitions,
    table_uri,
)

__all__ = [
    "SCHEMAS",
    "arrow_filesystem",
    "connect",
    "list_files",
    "list_partitions",
    "register_views",
    "table_uri",
]
