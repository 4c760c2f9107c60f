"""`movesmart backfill`: the daily analytics over a range of past days, in `make dev`'s instance.

Why not `dagster asset materialize --partition-range`: without DAGSTER_HOME it runs in a
throwaway instance (the run never shows in the UI), prints a telemetry banner, and Dagster
1.13 deprecates it for `dg launch`, which is not part of our install (dagster-dg-cli). This
command runs `daily_analytics_job` — what the daily schedule runs, the tables' quality checks
included — as one run over the range through `dagster.execute_job`, in the instance `make dev`
uses (`$MOVESMART_HOME/dagster`, configured by `movesmart_dagster/dev.py`: telemetry off).
The run, its materializations and check results show in the UI of a running `make dev`; the
terminal shows the run's INFO lines and up (the instance's `python_log_level`) and a one-line result.
"""

from __future__ import annotations

import os
from datetime import date

import click

from movesmart_dagster.cli import settings_from_context

# how Dagster runs a partition range as a single run (what `--partition-range` sets)
_RANGE_START_TAG = "dagster/asset_partition_range_start"
_RANGE_END_TAG = "dagster/asset_partition_range_end"


def analytics_job():  # -> dg.JobDefinition; module level so that `dg.reconstructable` can find it
    from movesmart_dagster.definitions import defs
    from movesmart_dagster.defs.keys import ANALYTICS_JOB_NAME

    return defs.resolve_job_def(ANALYTICS_JOB_NAME)


def _day(value: str, name: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}", param_hint=name) from None


@click.command()
@click.option("--start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", default=None, help="Last day, YYYY-MM-DD (default: --start).")
@click.pass_context
def backfill(ctx: click.Context, start: str, end: str | None) -> None:
    """Compute the daily analytics for START..END as one run, visible in `make dev`'s UI."""
    settings = settings_from_context(ctx)
    first, last = _day(start, "--start"), _day(end or start, "--end")
    if first > last:
        raise click.BadParameter(f"{last} is before {first}", param_hint="--end")

    from movesmart_dagster.dev import ensure_instance_yaml

    dagster_home = settings.home_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    ensure_instance_yaml(dagster_home)
    # the environment `make dev` gives dagster dev: resources read these through EnvVar
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["MOVESMART_HOME"] = str(settings.home_dir)

    import dagster as dg

    job = analytics_job()
    known = set(job.partitions_def.get_partition_keys())
    for day, name in ((first, "--start"), (last, "--end")):
        if day not in known:
            raise click.BadParameter(
                f"{day} is not a daily partition of the analytics (they start at "
                f"{settings.start_date}, MOVESMART_START_DATE, and end yesterday)",
                param_hint=name,
            )
    click.echo(f"backfill  {first}...{last}  {job.name}  (DAGSTER_HOME={dagster_home})")
    with (
        dg.DagsterInstance.get() as instance,
        dg.execute_job(
            dg.reconstructable(analytics_job),
            instance=instance,
            tags={_RANGE_START_TAG: first, _RANGE_END_TAG: last},
        ) as result,
    ):
        materialized = len(result.get_asset_materialization_events())
        success, run_id = result.success, result.run_id
    click.echo(
        f"run {run_id} {'SUCCESS' if success else 'FAILURE'}: {materialized} materializations "
        f"(in the UI: Runs -> {run_id[:8]})"
    )
    if not success:
        ctx.exit(1)
