"""The catalog layer: Glue tables and partitions, and the Redshift external schema over them.

`glue` keeps the Glue Data Catalog equal to the warehouse (no crawler); `redshift` renders
`sql/create_external_schema.sql` and sends it through the Redshift Data API. Both take their
boto3 client as an argument, so the Dagster resources, the CLI and the tests share one code
path. `python -m movesmart_dagster.catalog --help` drives them without Dagster.
"""

from movesmart_dagster.catalog.glue import (
    CatalogError,
    GlueCatalog,
    discover_partitions,
    glue_location,
    sync_catalog,
    table_location,
)
from movesmart_dagster.catalog.redshift import (
    RedshiftDataExecutor,
    RedshiftError,
    create_external_schema,
    example_queries,
    external_schema_statements,
)

__all__ = [
    "CatalogError",
    "GlueCatalog",
    "RedshiftDataExecutor",
    "RedshiftError",
    "create_external_schema",
    "discover_partitions",
    "example_queries",
    "external_schema_statements",
    "glue_location",
    "sync_catalog",
    "table_location",
]
