"""`movesmart stack up | down | status`: the local broker and optional S3 endpoint."""

from __future__ import annotations

import click

from movesmart_dagster.cli import settings_from_context
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import StackError
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint


def _fail(err: StackError) -> None:
    raise click.ClickException(str(err))


@click.group()
def stack() -> None:
    """Run the local stack: a Kafka broker (KRaft) and, with --s3, an S3 endpoint."""


@stack.command()
@click.option("--s3", "with_s3", is_flag=True, help="Also start the local S3 endpoint and create the bucket.")
@click.pass_context
def up(ctx: click.Context, with_s3: bool) -> None:
    """Start the broker (idempotent) and wait until it accepts connections."""
    settings = settings_from_context(ctx)
    try:
        broker = KafkaBroker(settings).up()
        click.echo(f"kafka   running pid={broker.pid} bootstrap={broker.bootstrap}")
        if with_s3:
            s3 = LocalS3Endpoint(settings).up()
            click.echo(f"s3      running pid={s3.pid} endpoint={s3.endpoint} bucket={s3.bucket}")
            if settings.s3_endpoint != s3.endpoint:
                click.echo(f"        export MOVESMART_S3_ENDPOINT={s3.endpoint}")
    except StackError as err:
        _fail(err)


@stack.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop whatever of the stack runs (nothing running is fine); data survives."""
    settings = settings_from_context(ctx)
    stopped_kafka = KafkaBroker(settings).down()
    stopped_s3 = LocalS3Endpoint(settings).down()
    click.echo(f"kafka   {'stopped' if stopped_kafka else 'was not running'}")
    if stopped_s3:
        click.echo("s3      stopped")


@stack.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say what runs, with pids and addresses."""
    settings = settings_from_context(ctx)
    k = KafkaBroker(settings).status()
    s3 = LocalS3Endpoint(settings).status()
    if k.running:
        click.echo(
            f"kafka   running pid={k.pid} bootstrap={k.bootstrap} controller=127.0.0.1:{k.controller_port}"
        )
    else:
        click.echo(f"kafka   stopped (bootstrap would be {k.bootstrap})")
    click.echo(
        f"s3      running pid={s3.pid} endpoint={s3.endpoint} bucket={s3.bucket}"
        if s3.running
        else "s3      stopped"
    )
    click.echo(f"home    {settings.home_dir}")
    click.echo(f"warehouse {settings.warehouse}")
