"""`movesmart query "SQL"`: DuckDB over the tables, printed as a table, CSV or JSON."""

from __future__ import annotations

import base64
import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click

from movesmart_dagster.cli import settings_from_context


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
    """Run SQL on the tables (views named like them, also as dev_smartcity.<table>)."""
    import duckdb

    from movesmart_dagster.tables.duck import connect

    settings = settings_from_context(ctx)
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
