"""`glue_tables` and `dev_smartcity`: the tables in their catalog, and queryable by name.

`glue_tables` (its key kept from the Parquet days, so bookmarks and history stay) is now a thin
"ensure tables" step over the Iceberg catalog (`tables.catalog`): the namespace and the six
tables created when missing, the fields schemas.py gained added; its metadata shows each
table's current snapshot (rows, files, days). The catalog itself registers tables and
snapshots — Glue in AWS mode (`MOVESMART_CATALOG=glue`), the SQLite catalog locally — so there
is no crawler and no partition registration. `dev_smartcity` runs `sql/create_external_schema.sql`
(CREATE EXTERNAL SCHEMA IF NOT EXISTS ... FROM DATA CATALOG) through the Redshift Data API when
Redshift is configured; otherwise it creates the schema of the same name in the persistent DuckDB
file under MOVESMART_HOME (views over each table's current snapshot, refreshed on each
materialization), so the seed's `select * from dev_smartcity.gps_data` runs unchanged with
`movesmart query`.
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
    CatalogResource,
    DuckDBResource,
    RedshiftResource,
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
    kinds={"iceberg"},
    description="The six Iceberg tables in their catalog (Glue in AWS mode): created when missing, "
    "fields added in schemas.py added; each table's current snapshot.",
)
def glue_tables(context: dg.AssetExecutionContext, catalog: CatalogResource) -> dg.MaterializeResult:
    from movesmart_dagster.tables import scan
    from movesmart_dagster.tables.catalog import ensure_tables, load_table, table_summary

    settings = catalog.settings()
    iceberg = catalog.load()
    states = ensure_tables(settings, iceberg)
    rows = []
    for table, state in states.items():
        summary = table_summary(load_table(settings, table, iceberg))
        days = scan.current(settings, table, iceberg).days
        rows.append(
            [
                table,
                state,
                summary["snapshot_id"] or "-",
                summary["total_rows"],
                summary["total_files"],
                len(days),
                days[-1] if days else "-",
            ]
        )
        context.log.info(f"{table}: {state}, {summary}")
    return dg.MaterializeResult(
        metadata={
            "mode": settings.catalog,
            "namespace": settings.glue_database,
            "created": sum(s == "created" for s in states.values()),
            "evolved": sum(s == "evolved" for s in states.values()),
            "tables": dg.MetadataValue.md(
                _md_table(["table", "ensure", "snapshot", "rows", "files", "days", "newest day"], rows)
            ),
        }
    )


def create_local_schema(duckdb: DuckDBResource, settings: Settings) -> dict[str, int]:
    """`dev_smartcity` (and `main`) views in the persistent DuckDB file (`DuckDBResource.views`);
    returns the row count of each table as `dev_smartcity.<table>` answers it (the verification)."""
    schema = settings.redshift_schema
    with duckdb.views(persistent=True) as con:
        if schema != "dev_smartcity":  # the views are named in dev_smartcity; mirror them
            from movesmart_dagster.tables import register_views

            register_views(con, settings, ("main", schema))
        return {
            t: int(con.execute(f'select count(*) from "{schema}"."{t}"').fetchone()[0]) for t in ALL_TABLES
        }


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
    description="Ensure the Iceberg tables in their catalog and (re)create the dev_smartcity schema.",
)

catalog_schedule = dg.ScheduleDefinition(
    name="catalog_schedule",
    job=catalog_job,
    cron_schedule="*/30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 30 minutes: tables ensured, dev_smartcity refreshed to the current snapshots.",
)
