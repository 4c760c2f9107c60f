"""The `movesmart` console script.

Subcommands live beside the code they drive (stack/, simulator/, streaming/, tables/, catalog/, backfill.py)
and are imported lazily, so `movesmart stack status` does not pay for importing Spark.
Every command reads the same Settings; a malformed setting ends the command with a
one-line message naming the variable and exit status 1.
"""

from __future__ import annotations

import importlib
import sys

import click

from movesmart_dagster.settings import Settings, SettingsError, load_settings
from movesmart_dagster.stack.processes import StackError

# command name -> "module:attribute"
_LAZY_COMMANDS: dict[str, str] = {
    "stack": "movesmart_dagster.stack.cli:stack",
    "simulate": "movesmart_dagster.simulator.cli:simulate",
    "stream": "movesmart_dagster.streaming.cli:stream",
    "query": "movesmart_dagster.tables.cli:query",
    "tables": "movesmart_dagster.tables.cli:tables",
    "catalog": "movesmart_dagster.catalog.cli:catalog",
    "backfill": "movesmart_dagster.backfill:backfill",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS:
            module, attr = _LAZY_COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)


def settings_from_context(ctx: click.Context) -> Settings:
    """The settings loaded once by the top-level group."""
    return ctx.find_root().obj


@click.group(cls=LazyGroup)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Move Smart: smart-city streams from Kafka to queryable tables."""
    try:
        ctx.obj = load_settings()
    except SettingsError as err:
        raise click.ClickException(str(err)) from None


def main() -> None:
    try:
        cli(standalone_mode=True)
    except (StackError, SettingsError) as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
