"""Daily-partitioned analytics computed with Spark, automated per day, with partition freshness checks.

Each asset reads one `event_date` of its source table through Spark's Iceberg catalog, applies the pure function from
`movesmart_dagster.analytics.compute`, and overwrites `<warehouse>/analytics/<name>/event_date=D/`
(idempotent). The automation sensor computes a closed day once its source day's checks passed,
and again when late records change it (`defs/automation.py`). Before computing a day, the
table quality rules also run on that day (DuckDB), for manual runs and backfills that do not
wait for the checks: a day with bad rows fails the asset instead of flowing into the insights.
Backfills run as a single run over a range (one Spark session for all days): from the UI or
the CLI (README, *Schedules and backfills*).
Metadata per day: rows, output path, a preview table and a chart (PNG in markdown). A range
run still gives each day its own materialization with that day's own metadata
(`context.add_asset_metadata(..., partition_key=day)`); metadata on the returned result would
be copied to every day of the range.
"""

from typing import Any

import dagster as dg

from movesmart_dagster.analytics import compute, plots
from movesmart_dagster.defs.automation import analytics_condition
from movesmart_dagster.defs.checks import quality
from movesmart_dagster.defs.keys import ANALYTICS_JOB_NAME, ANALYTICS_KEYS, GROUP_ANALYTICS, TABLE_KEYS
from movesmart_dagster.defs.partitions import ANALYTICS_DEADLINE_CRON, daily_partitions
from movesmart_dagster.defs.quiet_sensors import quiet
from movesmart_dagster.defs.resources import DuckDBResource, SparkResource
from movesmart_dagster.settings import Settings

PREVIEW_ROWS = 10
DESCRIPTIONS = {
    "vehicle_trip_summary": "Per vehicle and day: readings, first/last seen, duration, distance "
    "(haversine between consecutive fixes), average and top speed, start and end points.",
    "hourly_speed_by_area": "Per hour and 0.01-degree grid cell (~1 km): readings, vehicles, average and top speed.",
    "weather_summary": "Per hour: temperature (avg/min/max), humidity, precipitation, wind, air quality, "
    "most reported condition.",
    "emergency_incident_summary": "Per incident type and status: distinct incidents, reports, vehicles "
    "reporting, first and last report.",
}


def _preview(pdf: Any) -> str:
    if pdf is None or len(pdf) == 0:
        return "_no rows for this day_"
    head = pdf.head(PREVIEW_ROWS).copy()
    for col in head.columns:
        if str(head[col].dtype).startswith("datetime"):
            head[col] = head[col].astype(str)
    cols = list(head.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return "\n".join(lines)


def compute_day(spark: Any, settings: Settings, name: str, event_date: str) -> tuple[str, Any]:
    """Compute and write one day of one analytics table; returns (path, pandas result)."""
    table, fn = compute.ANALYTICS[name]
    result = fn(compute.read_day(spark, settings, table, event_date)).cache()
    path = compute.write_day(result, settings.warehouse, name, event_date)
    pdf = result.toPandas()
    result.unpersist()
    return path, pdf


def day_metadata(name: str, event_date: str, path: str, pdf: Any) -> dict[str, Any]:
    """The materialization metadata of one day: its rows, path, preview and chart."""
    return {
        "dagster/row_count": len(pdf),
        "path": dg.MetadataValue.path(path),
        "preview": dg.MetadataValue.md(f"**{event_date}**\n\n" + _preview(pdf)),
        "chart": dg.MetadataValue.md(plots.chart_for(name, pdf, event_date)),
    }


def _analytics_asset(
    name: str, partitions_def: dg.DailyPartitionsDefinition, automation: dg.AutomationCondition
) -> dg.AssetsDefinition:
    table, fn = compute.ANALYTICS[name]

    @dg.asset(
        key=ANALYTICS_KEYS[name],
        deps=[TABLE_KEYS[table]],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        automation_condition=automation,
        group_name=GROUP_ANALYTICS,
        kinds={"spark", "parquet"},
        description=DESCRIPTIONS[name],
        metadata={"source_table": table},
    )
    def _asset(
        context: dg.AssetExecutionContext, spark: SparkResource, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        settings = spark.settings()
        days = context.partition_keys
        for day in days:
            with duckdb.views(day=day) as con:  # that day's files only
                failed = quality.gate(con, [table], day, settings.quarantine_max_share)
            if failed:
                raise dg.Failure(
                    description=f"{table} event_date={day} fails its quality rules; not computing {name}",
                    metadata={r.name: r.description for r in failed},
                )
        from pyspark.sql import SparkSession

        # the run's four assets share one session; asking the builder again for it only logs
        # "WARN SparkSession: Using an existing Spark session" (its static conf cannot change)
        session = SparkSession.getActiveSession() or spark.session("movesmart-analytics")
        for day in days:
            path, pdf = compute_day(session, settings, name, day)
            context.log.info(f"{name} {day}: {len(pdf)} rows -> {path}")
            context.add_asset_metadata(day_metadata(name, day, path, pdf), partition_key=day)
        return dg.MaterializeResult()

    return _asset


def analytics_definitions(settings: Settings) -> dg.Definitions:
    """Assets, job, freshness checks and their sensor, from the settings."""
    partitions = daily_partitions(settings)  # the tables' own
    automation = analytics_condition(settings)
    assets = [_analytics_asset(n, partitions, automation) for n in compute.ANALYTICS]
    job = dg.define_asset_job(
        ANALYTICS_JOB_NAME,
        # each asset gates its days on the quality rules itself (a range run covers many days,
        # which the per-day checks, one day per run, cannot join)
        selection=dg.AssetSelection.assets(*assets).without_checks(),  # partitions: the assets'
        executor_def=dg.in_process_executor,  # one Spark session for the four assets
        description="The four daily analytics for one day (or a range, as a single run).",
    )
    freshness_checks = dg.build_time_partition_freshness_checks(
        assets=assets,
        deadline_cron=ANALYTICS_DEADLINE_CRON,
        timezone="UTC",
        severity=dg.AssetCheckSeverity.WARN,
    )
    freshness_sensor = quiet(
        dg.build_sensor_for_freshness_checks(
            freshness_checks=freshness_checks,
            name="analytics_freshness_checks_sensor",
            minimum_interval_seconds=600,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    )
    return dg.Definitions(
        assets=assets, jobs=[job], asset_checks=freshness_checks, sensors=[freshness_sensor]
    )
