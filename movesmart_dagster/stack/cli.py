"""`movesmart stack up | down | status`: the local Kafka (one broker or three) and optional S3 endpoint."""

from __future__ import annotations

import click

from movesmart_dagster.cli import settings_from_context
from movesmart_dagster.stack.kafka_broker import BrokerStatus, KafkaBroker, replication_for
from movesmart_dagster.stack.processes import StackError
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint


def _fail(err: StackError) -> None:
    raise click.ClickException(str(err))


@click.group()
def stack() -> None:
    """Run the local stack: a Kafka broker (KRaft) and, with --s3, an S3 endpoint."""


@stack.command()
@click.option("--s3", "with_s3", is_flag=True, help="Also start the local S3 endpoint and create the bucket.")
@click.option(
    "--brokers",
    type=click.Choice(["1", "3"]),
    default=None,
    help="1 node, or 3 replicated (RF 3, min.insync.replicas 2); "
    "default: the cluster this home holds, else MOVESMART_KAFKA_BROKERS.",
)
@click.pass_context
def up(ctx: click.Context, with_s3: bool, brokers: str | None) -> None:
    """Start the brokers that are not running (idempotent); wait until they serve."""
    settings = settings_from_context(ctx)
    try:
        cluster = KafkaBroker(settings, brokers=int(brokers) if brokers else None)
        status = cluster.up()
        _echo_kafka(status, cluster.brokers)
        if status.bootstrap != settings.kafka_bootstrap_servers:
            click.echo(f"        export KAFKA_BOOTSTRAP_SERVERS={status.bootstrap}")
        click.echo(f"home    {settings.home_dir}")
        if with_s3:
            s3 = LocalS3Endpoint(settings).up()
            click.echo(f"s3      running pid={s3.pid} endpoint={s3.endpoint} bucket={s3.bucket}")
            if settings.s3_endpoint != s3.endpoint:
                click.echo(f"        export MOVESMART_S3_ENDPOINT={s3.endpoint}")
    except StackError as err:
        _fail(err)


def _echo_kafka(status: BrokerStatus, brokers: int) -> None:
    """One line for a single node (as ever); a summary line and one per node for a cluster."""
    if brokers == 1:
        node = status.nodes[0]
        if node.running:
            click.echo(
                f"kafka   running pid={node.pid} bootstrap={status.bootstrap} "
                f"controller=127.0.0.1:{node.controller_port}"
            )
        else:
            click.echo(f"kafka   stopped (bootstrap would be {status.bootstrap})")
        return
    replicas, min_isr = replication_for(brokers)
    click.echo(
        f"kafka   {status.running_count}/{brokers} brokers running bootstrap={status.bootstrap} "
        f"(topics: replication {replicas}, min.insync.replicas {min_isr})"
    )
    for node in status.nodes:
        state = f"running pid={node.pid}" if node.running else "stopped"
        click.echo(
            f"  broker {node.node_id} {state} {node.address} controller=127.0.0.1:{node.controller_port}"
        )


@stack.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop whatever of the stack runs (nothing running is fine); data survives."""
    settings = settings_from_context(ctx)
    cluster = KafkaBroker(settings)
    stopped_kafka = cluster.down()
    stopped_s3 = LocalS3Endpoint(settings).down()
    what = "stopped" if cluster.brokers == 1 else f"stopped {cluster.brokers} brokers"
    click.echo(f"kafka   {what if stopped_kafka else 'was not running'}")
    if stopped_s3:
        click.echo("s3      stopped")


@stack.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say what runs, with pids and addresses."""
    settings = settings_from_context(ctx)
    cluster = KafkaBroker(settings)
    s3 = LocalS3Endpoint(settings).status()
    _echo_kafka(cluster.status(), cluster.brokers)
    click.echo(
        f"s3      running pid={s3.pid} endpoint={s3.endpoint} bucket={s3.bucket}"
        if s3.running
        else "s3      stopped"
    )
    click.echo(f"home    {settings.home_dir}")
    click.echo(f"warehouse {settings.warehouse}")
