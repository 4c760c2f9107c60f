"""The catalog layer: the Iceberg catalog's CLI and the Redshift external schema over Glue.

The Iceberg catalog itself (its properties, the tables, their schemas) lives in
`movesmart_dagster.tables.catalog`: it registers tables and snapshots, so there is no crawler and
no partition registration. `redshift` renders `sql/create_external_schema.sql` and sends it
through the Redshift Data API (AWS mode: an external schema over the Glue database, whose Iceberg
tables Redshift reads). `movesmart catalog --help` drives both without Dagster.
"""

from movesmart_dagster.catalog.redshift import (
    RedshiftDataExecutor,
    RedshiftError,
    create_external_schema,
    example_queries,
    external_schema_statements,
)
from movesmart_dagster.tables.catalog import CatalogError

__all__ = [
    "CatalogError",
    "RedshiftDataExecutor",
    "RedshiftError",
    "create_external_schema",
    "example_queries",
    "external_schema_statements",
]
