"""`movesmart catalog`: the catalog's properties, its tables, and the Redshift schema, by hand.

Why a command: any Iceberg client (pyiceberg, a notebook, the acceptance checks) needs the
catalog's properties, and a person setting up AWS wants to create the tables and the Redshift
schema once and see what happened, without Dagster.
"""

from __future__ import annotations

import click

from movesmart_dagster.cli import settings_from_context


@click.group()
def catalog() -> None:
    """The Iceberg catalog of the tables and the Redshift schema over it."""


@catalog.command("properties")
@click.pass_context
def properties(ctx: click.Context) -> None:
    """Print {"namespace": ..., "properties": {...}} for pyiceberg's load_catalog("movesmart", **properties)."""
    from movesmart_dagster.tables.catalog import catalog_properties_json

    click.echo(catalog_properties_json(settings_from_context(ctx)))


@catalog.command("ensure")
@click.pass_context
def ensure(ctx: click.Context) -> None:
    """Create the namespace and the six tables when missing; add fields schemas.py gained."""
    from movesmart_dagster.tables.catalog import CatalogError, ensure_tables, identifier

    settings = settings_from_context(ctx)
    try:
        states = ensure_tables(settings)
    except CatalogError as err:
        raise click.ClickException(str(err)) from None
    for table, state in states.items():
        click.echo(f"{identifier(settings, table)}: {state}")


@catalog.command("redshift-schema")
@click.option("--print-only", is_flag=True, help="Print the statements instead of running them.")
@click.pass_context
def redshift_schema(ctx: click.Context, print_only: bool) -> None:
    """Create the Redshift external schema over the Glue database (Data API)."""
    from movesmart_dagster.catalog.redshift import (
        RedshiftError,
        create_external_schema,
        external_schema_statements,
    )

    settings = settings_from_context(ctx)
    try:
        statements = external_schema_statements(settings) if print_only else create_external_schema(settings)
    except RedshiftError as err:
        raise click.ClickException(str(err)) from None
    for statement in statements:
        click.echo(statement)
