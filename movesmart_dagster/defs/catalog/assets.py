"""`glue_tables` and `dev_smartcity`: make the tables queryable by name.

AWS mode (an s3a:// warehouse, or the local moto Glue when MOVESMART_S3_ENDPOINT is set):
`glue_tables` registers the database, the tables (schema from `schemas`) and every
`event_date` partition found in the warehouse — no crawler, `_spark_metadata` and
checkpoints never catalogued — and `dev_smartcity` runs `sql/create_external_schema.sql`
(CREATE EXTERNAL SCHEMA IF NOT EXISTS ... FROM DATA CATALOG) through the Redshift Data API.
Local mode: `glue_tables` says it has nothing to register, and `dev_smartcity` creates the
schema of the same name in the persistent DuckDB file under MOVESMART_HOME, so the seed's
`select * from dev_smartcity.gps_data` runs unchanged with `movesmart query`.
"""

from datetime import timedelta
from typing import Any

import dagster as dg

from movesmart_dagster.defs.keys import (
    DEV_SMARTCITY_KEY,
    GLUE_TABLES_KEY,
    GROUP_CATALOG,
    TABLE_KEYS,
)
from movesmart_dagster.defs.resources import (
    DuckDBResource,
    GlueResource,
    RedshiftResource,
    WarehouseResource,
)
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import Settings


def _md_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dg.asset(
    key=GLUE_TABLES_KEY,
    deps=list(TABLE_KEYS.values()),
    group_name=GROUP_CATALOG,
    kinds={"glue"},
    description="Glue database, tables and event_date partitions registered from the warehouse listing.",
)
def glue_tables(
    context: dg.AssetExecutionContext, glue: GlueResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    settings = glue.settings()
    if not glue.enabled:
        context.log.info("local warehouse and no MOVESMART_S3_ENDPOINT: no Glue catalog to register into")
        return dg.MaterializeResult(
            metadata={
                "mode": "local",
                "registered": "nothing: Glue applies to an s3a:// warehouse or a local endpoint",
            }
        )
    from movesmart_dagster.catalog import sync_catalog

    s3_client = warehouse.s3.get_client() if settings.warehouse_is_s3 else None
    result = sync_catalog(settings, glue.catalog(), s3_client=s3_client)
    catalog = glue.catalog()
    rows = []
    for table, r in result.items():
        registered = catalog.list_partitions(settings.glue_database, table)
        rows.append(
            [table, r["table"], len(r["added"]), len(registered), registered[-1] if registered else "-"]
        )
        context.log.info(f"{table}: table {r['table']}, partitions added {r['added']}")
    return dg.MaterializeResult(
        metadata={
            "mode": "aws" if settings.warehouse_is_s3 else "local endpoint",
            "database": settings.glue_database,
            "partitions_added": sum(len(r["added"]) for r in result.values()),
            "tables": dg.MetadataValue.md(
                _md_table(["table", "definition", "partitions added", "partitions", "newest"], rows)
            ),
        }
    )


def create_local_schema(duckdb: DuckDBResource, settings: Settings) -> dict[str, int]:
    """`dev_smartcity` (and `main`) views in the persistent DuckDB file, through `tables.connect`;
    returns the row count of each table as `dev_smartcity.<table>` answers it (the verification)."""
    schema = settings.redshift_schema
    con = duckdb.connect(persistent=True)
    try:
        if schema != "dev_smartcity":  # tables.connect names the schema dev_smartcity; mirror it
            from movesmart_dagster.tables import register_views

            register_views(con, settings, ("main", schema))
        return {
            t: int(con.execute(f'select count(*) from "{schema}"."{t}"').fetchone()[0]) for t in ALL_TABLES
        }
    finally:
        con.close()


def dev_smartcity(
    context: dg.AssetExecutionContext, redshift: RedshiftResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    if redshift.configured:
        statements = redshift.statements()
        ids = redshift.execute(statements)
        context.log.info(f"ran {len(statements)} statement(s) through the Redshift Data API: {ids}")
        return dg.MaterializeResult(
            metadata={
                "mode": "redshift",
                "statements": dg.MetadataValue.md("```sql\n" + ";\n".join(statements) + "\n```"),
                "statement_ids": ", ".join(ids),
            }
        )
    settings = duckdb.settings()
    counts = create_local_schema(duckdb, settings)
    context.log.info(f"dev_smartcity in {duckdb.database_path}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "mode": "duckdb",
            "database": dg.MetadataValue.path(str(duckdb.database_path)),
            "tables": dg.MetadataValue.md(_md_table(["table", "rows"], [[t, n] for t, n in counts.items()])),
            "try": dg.MetadataValue.md('`movesmart query "select * from dev_smartcity.gps_data limit 10"`'),
        }
    )


def catalog_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    """The two assets, with the catalog freshness policy on `dev_smartcity`."""
    policy = dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=settings.catalog_freshness_fail_minutes)
    )
    schema_asset = dg.asset(
        key=DEV_SMARTCITY_KEY,
        deps=[GLUE_TABLES_KEY],
        group_name=GROUP_CATALOG,
        kinds={"redshift", "duckdb"},
        freshness_policy=policy,
        description=(
            "External schema dev_smartcity: Redshift Spectrum over the Glue database (AWS mode), or the "
            "schema of the same name in the embedded DuckDB catalog (local mode, `movesmart query`)."
        ),
    )(dev_smartcity)
    return [glue_tables, schema_asset]


catalog_job = dg.define_asset_job(
    "catalog_job",
    selection=dg.AssetSelection.assets(GLUE_TABLES_KEY, DEV_SMARTCITY_KEY),
    description="Register new partitions in Glue and (re)create the dev_smartcity schema.",
)

catalog_schedule = dg.ScheduleDefinition(
    name="catalog_schedule",
    job=catalog_job,
    cron_schedule="*/30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: new event_date partitions into Glue, dev_smartcity refreshed.",
)
