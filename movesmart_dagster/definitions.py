"""The Dagster code location: `defs` assembles what `defs/` defines, grouped by integration.

Loaded by `dagster dev -w workspace.yaml` (and `dagster definitions validate`). Settings are
read once here, from the environment of the process that loads the code; resources take
their values through `EnvVar` so runs launched by `dagster dev` see the same environment.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.defs.alerts.sensor import build_alert_sensor, run_failure_alerts
from movesmart_dagster.defs.analytics.assets import analytics_definitions
from movesmart_dagster.defs.automation import automation_sensor
from movesmart_dagster.defs.catalog.assets import catalog_assets, catalog_job
from movesmart_dagster.defs.checks.checks import table_checks
from movesmart_dagster.defs.kafka.assets import kafka_topics
from movesmart_dagster.defs.kafka.lag import kafka_consumer_lag
from movesmart_dagster.defs.keys import DEV_SMARTCITY_KEY, TABLE_KEYS
from movesmart_dagster.defs.maintenance.compaction import compaction_definitions
from movesmart_dagster.defs.maintenance.snapshots import snapshot_definitions
from movesmart_dagster.defs.partitions import daily_partitions
from movesmart_dagster.defs.resources import build_resources
from movesmart_dagster.defs.schedules.schedules import schedules
from movesmart_dagster.defs.streaming.assets import (
    table_freshness_checks,
    table_freshness_sensor,
    table_specs,
)
from movesmart_dagster.defs.streaming.job import streaming_job
from movesmart_dagster.defs.streaming.supervisor import build_supervisor_sensor
from movesmart_dagster.settings import load_settings


def build_defs() -> dg.Definitions:
    settings = load_settings()
    partitions = daily_partitions(settings)
    analytics = analytics_definitions(settings)
    quality_checks = table_checks(partitions)
    freshness_checks = table_freshness_checks(settings)
    compaction = compaction_definitions(partitions)
    snapshots = snapshot_definitions()
    return dg.Definitions(
        assets=[kafka_topics, *table_specs(settings), *catalog_assets(settings), *analytics["assets"]]
        + [compaction["asset"], snapshots["asset"]],
        asset_checks=[
            kafka_consumer_lag,
            *quality_checks,
            *freshness_checks,
            *analytics["checks"],
            *compaction["checks"],
        ],
        jobs=[
            streaming_job,
            catalog_job,
            analytics["job"],
            compaction["job"],
            snapshots["job"],
        ],
        schedules=[*schedules(), compaction["schedule"], snapshots["schedule"]],
        sensors=[
            build_supervisor_sensor(settings),
            build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY]),
            run_failure_alerts,
            analytics["sensor"],
            automation_sensor(
                dg.AssetSelection.assets(*analytics["assets"]) | dg.AssetSelection.checks(*quality_checks)
            ),
            table_freshness_sensor(freshness_checks),
        ],
        resources=build_resources(),
        executor=dg.in_process_executor,  # one process per run: a run's Spark session is shared
    )


defs = build_defs()
