"""`movesmart query "SQL"`: DuckDB over the tables, printed as a table, CSV or JSON.
`movesmart tables compact|expire|remove-orphans`: the maintenance of tables/maintenance.py.
`movesmart tables import-legacy`: a warehouse of the previous plain-Parquet layout into the
Iceberg tables (tables/legacy.py)."""

from __future__ import annotations

import base64
import csv
import json
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click

from movesmart_dagster.cli import settings_from_context
from movesmart_dagster.schemas import ALL_TABLES


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    return v


def _text(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bytes | bytearray | memoryview):
        raw = bytes(v)
        shown = raw[:60].decode("utf-8", errors="replace")
        return shown + ("…" if len(raw) > 60 else "")
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, dict | list):
        return json.dumps(_json_value(v))
    return str(v)


def render_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    cells = [[_text(v)[:max_width] for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    fmt = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)) + " |"  # noqa: E731
    out = [line, fmt(columns), line, *(fmt(r) for r in cells), line]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


@click.command()
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.pass_context
def query(ctx: click.Context, sql: str, fmt: str) -> None:
    """Run SQL on the tables and analytics (views named like them, also as dev_smartcity.<name>)."""
    import duckdb

    from movesmart_dagster.tables.duck import connect
    from movesmart_dagster.tables.warehouse import warehouse_exists, warehouse_location

    settings = settings_from_context(ctx)
    if not warehouse_exists(settings):
        # empty views here would read as "no data yet" when the likelier cause is the wrong place
        raise click.ClickException(
            f"no warehouse at {warehouse_location(settings)}: nothing was ever written there "
            "(set MOVESMART_HOME or MOVESMART_WAREHOUSE to where the streaming job writes)"
        )
    con = connect(settings)
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall() if columns else []
    except duckdb.Error as err:
        raise click.ClickException(str(err).splitlines()[0]) from None
    finally:
        con.close()
    if fmt == "json":
        click.echo(
            json.dumps([{c: _json_value(v) for c, v in zip(columns, r, strict=True)} for r in rows], indent=1)
        )
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(
                ["" if v is None else (_json_value(v) if not isinstance(v, str) else v) for v in r]
            )
    else:
        click.echo(render_table(columns, rows))


@click.group()
def tables() -> None:
    """Table maintenance: compact small files, expire snapshots, remove orphan files, import an old warehouse."""


def _spark(ctx: click.Context):  # noqa: ANN202 (pyspark is imported lazily)
    from movesmart_dagster.spark_session import build_spark

    return build_spark(settings_from_context(ctx), "movesmart-maintenance")


_TABLE_OPTION = click.option(
    "--table",
    "table_names",
    type=click.Choice(list(ALL_TABLES)),
    multiple=True,
    help="Only this table (repeatable; default: all six).",
)


@tables.command()
@_TABLE_OPTION
@click.option(
    "--day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only this day partition (YYYY-MM-DD; default: every day).",
)
@click.pass_context
def compact(ctx: click.Context, table_names: tuple[str, ...], day: datetime | None) -> None:
    """Rewrite each day's small files into files of MOVESMART_TARGET_FILE_BYTES."""
    from movesmart_dagster.tables import maintenance

    settings = settings_from_context(ctx)
    spark = _spark(ctx)
    try:
        done = maintenance.compact(spark, settings, list(table_names) or None, day.date() if day else None)
    finally:
        spark.stop()
    for c in done:
        click.echo(c.describe())
    if not done:
        click.echo("nothing to compact: no data files")


@tables.command()
@_TABLE_OPTION
@click.option(
    "--retain-last",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Always keep at least this many of the newest snapshots.",
)
@click.pass_context
def expire(ctx: click.Context, table_names: tuple[str, ...], retain_last: int) -> None:
    """Expire snapshots older than MOVESMART_SNAPSHOT_RETENTION (and files only they referenced)."""
    from movesmart_dagster.tables import maintenance

    settings = settings_from_context(ctx)
    spark = _spark(ctx)
    try:
        for table in table_names or ALL_TABLES:
            before, after = maintenance.expire_snapshots(spark, settings, table, retain_last)
            click.echo(f"{table}: snapshots {before} -> {after}")
    finally:
        spark.stop()


@tables.command("remove-orphans")
@_TABLE_OPTION
@click.option(
    "--older-than-hours",
    type=float,
    default=72.0,
    show_default=True,
    help="Only files older than this (at least 1 hour: a writer's files are unreferenced until it commits).",
)
@click.pass_context
def remove_orphans(ctx: click.Context, table_names: tuple[str, ...], older_than_hours: float) -> None:
    """Delete files under the tables' locations that no snapshot references."""
    from movesmart_dagster.tables import maintenance

    settings = settings_from_context(ctx)
    older_than = timedelta(hours=older_than_hours)
    if older_than < maintenance.MIN_ORPHAN_AGE:  # before Spark starts
        raise click.ClickException(
            f"--older-than-hours {older_than_hours:g} is below the safe minimum of 1 hour: "
            "a running writer's files are unreferenced until it commits"
        )
    spark = _spark(ctx)
    try:
        for table in table_names or ALL_TABLES:
            removed = maintenance.remove_orphan_files(spark, settings, table, older_than)
            click.echo(f"{table}: {len(removed)} orphan files removed")
            for location in removed:
                click.echo(f"  {location}")
    finally:
        spark.stop()


@tables.command("import-legacy")
@_TABLE_OPTION
@click.option(
    "--dry-run", is_flag=True, help="List the old day folders (files, bytes, rows); change nothing."
)
@click.pass_context
def import_legacy(ctx: click.Context, table_names: tuple[str, ...], dry_run: bool) -> None:
    """Append the day folders of the previous plain-Parquet layout to the Iceberg tables, once.

    Each day is one snapshot marked with its folder, so a re-run imports nothing twice; imported
    folders move to <warehouse>/_legacy/ (delete it once the tables are checked).
    """
    from movesmart_dagster.tables import legacy
    from movesmart_dagster.tables.catalog import CatalogError
    from movesmart_dagster.tables.warehouse import warehouse_location

    settings = settings_from_context(ctx)
    tables_wanted = list(table_names) or list(ALL_TABLES)
    days = legacy.find_legacy_days(settings, tables_wanted)
    old_glue = legacy.old_glue_tables(settings, tables_wanted)
    if not days and not old_glue:  # no Spark session for nothing
        click.echo(f"nothing to import: no old-layout day folders in {warehouse_location(settings)}")
        return
    if dry_run:
        for name in old_glue:
            click.echo(f"{name}: the old Glue (Hive) table definition would be dropped (files untouched)")
        for day in days:
            rows = legacy.footer_rows(settings, day)
            click.echo(
                f"{day.label}: {legacy.count_of(len(day.files), 'file')}, {day.bytes} bytes, "
                f"{legacy.count_of(rows, 'row')} would be imported"
            )
        return
    sessions = []  # started on the first day to append, if any

    def spark():  # noqa: ANN202 (pyspark is imported lazily)
        if not sessions:
            sessions.append(_spark(ctx))
        return sessions[0]

    try:
        done = legacy.import_legacy(settings, spark, tables_wanted)
    except CatalogError as err:
        raise click.ClickException(str(err)) from None
    finally:
        for session in sessions:
            session.stop()
    for name in old_glue:
        click.echo(f"{name}: old Glue (Hive) table definition dropped (files untouched)")
    for imported in done:
        click.echo(imported.describe())
    if not done:
        return
    new = [d for d in done if not d.skipped]
    click.echo(
        f"imported {sum(d.rows for d in new)} rows from {sum(len(d.day.files) for d in new)} files "
        f"({len(new)} day folders, {len({d.day.table for d in new})} tables); old folders are in "
        f"{warehouse_location(settings).rstrip('/')}/{legacy.LEGACY_DIR}/ (delete once checked)"
    )
