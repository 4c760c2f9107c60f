"""`python -m movesmart_dagster.catalog`: the catalog steps of AWS mode without Dagster.

Why a module entry point: the Dagster assets run these on every commit, but a person
setting up an AWS account wants to run them once by hand and see what happened.
"""

from __future__ import annotations

import sys

import click

from movesmart_dagster.catalog.glue import CatalogError
from movesmart_dagster.catalog.redshift import RedshiftError
from movesmart_dagster.settings import SettingsError, load_settings


@click.group()
def main() -> None:
    """Glue and Redshift catalog steps (settings from the environment)."""


@main.command("sync")
def sync() -> None:
    """Create the Glue database and tables and register new event_date partitions."""
    from movesmart_dagster.catalog.glue import sync_catalog

    settings = load_settings()
    for table, outcome in sync_catalog(settings).items():
        added = outcome["added"]
        click.echo(
            f"{settings.glue_database}.{table}: table {outcome['table']}, {len(added)} partition(s) added"
        )


@main.command("redshift-schema")
@click.option("--print-only", is_flag=True, help="Print the statements instead of running them.")
def redshift_schema(print_only: bool) -> None:
    """Create the Redshift external schema over the Glue database (Data API)."""
    from movesmart_dagster.catalog.redshift import create_external_schema, external_schema_statements

    settings = load_settings()
    statements = external_schema_statements(settings) if print_only else create_external_schema(settings)
    for statement in statements:
        click.echo(statement)


if __name__ == "__main__":
    try:
        main()
    except (SettingsError, CatalogError, RedshiftError) as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
