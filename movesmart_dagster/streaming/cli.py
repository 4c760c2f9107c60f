"""`movesmart stream`: the streaming job in the foreground (see `streaming/job.py`)."""

from __future__ import annotations

import os
import sys

import click

from movesmart_dagster.cli import settings_from_context
from movesmart_dagster.streaming.options import DEFAULT_MAX_OFFSETS


@click.command()
@click.option(
    "--trigger-interval",
    default=None,
    help="Micro-batch interval [default: MOVESMART_STREAM_TRIGGER_INTERVAL].",
)
@click.option(
    "--max-offsets-per-trigger",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_OFFSETS,
    show_default=True,
    help="Cap of Kafka records per micro-batch (all topics together); 0: no cap.",
)
@click.option("--available-now", is_flag=True, help="Drain what Kafka holds now, then exit 0.")
@click.option("--checkpoint", default=None, help="Checkpoint URI [default: <checkpoint root>/stream].")
@click.pass_context
def stream(
    ctx: click.Context,
    trigger_interval: str | None,
    max_offsets_per_trigger: int | None,
    available_now: bool,
    checkpoint: str | None,
) -> None:
    """Kafka -> validated, partitioned Parquet tables, exactly once; SIGTERM stops after the batch."""
    from movesmart_dagster.settings import SettingsError
    from movesmart_dagster.streaming.faults import FAULT_ENV, Fault
    from movesmart_dagster.streaming.options import JobOptions, check_interval
    from movesmart_dagster.streaming.query import run

    settings = settings_from_context(ctx)
    try:
        Fault(os.environ.get(FAULT_ENV))
        trigger_interval = check_interval(trigger_interval or settings.stream_trigger_interval)
    except SettingsError as err:
        raise click.ClickException(str(err)) from None
    options = JobOptions(
        trigger_interval=trigger_interval,
        max_offsets_per_trigger=max_offsets_per_trigger,
        available_now=available_now,
        checkpoint=checkpoint,
    )
    sys.exit(run(settings, options))
