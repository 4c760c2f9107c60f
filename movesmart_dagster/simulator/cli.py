"""`movesmart simulate`: drive a simulated fleet into the five Kafka topics.

Exit status: 0 when every record was acknowledged; 1 when the run could not start
(broker unreachable, bad option); 3 when any delivery failed (the summary says how many).
Ctrl-C or SIGTERM stops producing, waits for what is in flight, prints the summary.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

import click

from movesmart_dagster.cli import settings_from_context
from movesmart_dagster.simulator.fleet import DEFAULT_START, SimConfig
from movesmart_dagster.simulator.producer import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DELIVERY_TIMEOUT_S,
    KAFKA_LOG,
    BrokerUnreachable,
    run_simulation,
)
from movesmart_dagster.simulator.routes import BUILTIN_ROUTES, DEFAULT_ROUTE, RouteError, parse_routes

EXIT_DELIVERY_FAILED = 3


def _split_routes(values: tuple[str, ...]) -> tuple[str, ...]:
    """`--route a,b --route c` -> (a, b, c); a custom `lat,lon:lat,lon` value is kept whole."""
    out: list[str] = []
    for v in values:
        out.extend([v] if ":" in v else [p for p in v.split(",") if p.strip()])
    return tuple(out) or (DEFAULT_ROUTE,)


def _parse_start(value: str | None) -> datetime:
    if value is None:
        return DEFAULT_START
    from movesmart_dagster.contract import parse_timestamp

    ts = parse_timestamp(value)
    if ts is None:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 timestamp", param_hint="--start-time")
    return ts


@click.command()
@click.option("--vehicles", type=click.IntRange(min=1), default=5, show_default=True, help="Fleet size.")
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed => byte-identical records.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Events/s cap; 0 = as fast as possible.",
)
@click.option("--max-events", type=click.IntRange(min=0), default=None, help="Stop after this many records.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds.",
)
@click.option("--realtime", is_flag=True, help="Event time is the wall clock (default: a simulated clock).")
@click.option(
    "--start-time",
    default=None,
    help=f"Start of the simulated clock, ISO-8601 (naive = UTC) [default: {DEFAULT_START.isoformat()}].",
)
@click.option(
    "--tick",
    type=click.FloatRange(0.1, 3600),
    default=5.0,
    show_default=True,
    help="Simulated seconds per reading.",
)
@click.option(
    "--bad-ratio",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of records malformed on purpose (exactly floor(p*N) of the first N when N is a multiple of 100).",
)
@click.option(
    "--route",
    "--routes",
    "routes",
    multiple=True,
    help=f"Route name(s), comma-separated or repeated; 'all'; or 'lat,lon:lat,lon' [default: {DEFAULT_ROUTE}].",
)
@click.option("--list-routes", is_flag=True, help="List the built-in routes and exit.")
@click.option(
    "--format",
    "wire_format",
    type=click.Choice(["canonical", "seed"]),
    default="canonical",
    show_default=True,
    help="canonical: location object, UTC offset; seed: [lat, lon] and naive timestamps as the seed sent.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_CONNECT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the broker at start.",
)
@click.option(
    "--delivery-timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_DELIVERY_TIMEOUT_S,
    show_default=True,
    help="Seconds a record may wait for the broker (e.g. a restart) before it counts as failed.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: when a terminal]."
)
@click.option(
    "--summary-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write the summary here."
)
@click.option("-v", "--verbose", is_flag=True, help="Show the Kafka client's log lines.")
@click.pass_context
def simulate(
    ctx: click.Context,
    vehicles: int,
    seed: int,
    rate: float,
    max_events: int | None,
    duration: float | None,
    realtime: bool,
    start_time: str | None,
    tick: float,
    bad_ratio: float,
    routes: tuple[str, ...],
    list_routes: bool,
    wire_format: str,
    connect_timeout: float,
    delivery_timeout: float,
    progress: bool | None,
    summary_json: Path | None,
    verbose: bool,
) -> None:
    """Simulate a fleet driving between cities and produce its readings to Kafka.

    Each vehicle sends a vehicle, gps, traffic and weather record per tick (emergencies
    when they start and end), keyed by deviceId, and stops at its destination; the run
    ends when all have arrived or a limit is reached.
    """
    if list_routes:
        for r in BUILTIN_ROUTES.values():
            click.echo(f"{r.name:<22} {r.start.name} -> {r.end.name}  {r.distance_km:6.1f} km")
        return
    if realtime and start_time is not None:
        raise click.UsageError("--realtime and --start-time exclude each other")
    try:
        config = SimConfig(
            vehicles=vehicles,
            seed=seed,
            routes=_split_routes(routes),
            start_time=_parse_start(start_time),
            realtime=realtime,
            tick_seconds=tick,
            bad_ratio=bad_ratio,
            max_events=max_events,
            wire_format=wire_format,  # type: ignore[arg-type]
        )
        parse_routes(config.routes)
    except RouteError as err:
        raise click.BadParameter(str(err), param_hint="--route") from None
    settings = settings_from_context(ctx)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s kafka %(levelname)s %(message)s"))
        KAFKA_LOG.addHandler(handler)
        KAFKA_LOG.setLevel(logging.DEBUG)

    # the first Ctrl-C/SIGTERM asks for a clean stop; a second Ctrl-C aborts at once
    stopping: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        summary = run_simulation(
            config,
            settings,
            rate=rate,
            duration_s=duration,
            progress=sys.stderr.isatty() if progress is None else progress,
            connect_timeout_s=connect_timeout,
            delivery_timeout_s=delivery_timeout,
            should_stop=lambda: bool(stopping),
        )
    except BrokerUnreachable as err:
        raise click.ClickException(str(err)) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    click.echo(summary.format())
    if summary_json:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    if not summary.ok:
        ctx.exit(EXIT_DELIVERY_FAILED)
