"""The Dagster code location: `defs` merges what each integration under `defs/` defines.

Loaded by `dagster dev -w workspace.yaml`, `dagster definitions validate` and `dg check defs` /
`dg list defs` (`[tool.dg]` in pyproject.toml). Each `defs/<integration>/definitions.py` returns
its own `dg.Definitions`; this module merges them and adds what spans integrations: the
automation sensor (analytics assets and table checks) and the purge of its history, the resources and the executor. Settings
are read once here, from the environment of the process that loads the code; resources take
their values through `EnvVar` so runs launched by `dagster dev` see the same environment.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.defs.alerts import definitions as alerts
from movesmart_dagster.defs.analytics.assets import analytics_definitions
from movesmart_dagster.defs.automation import automation_sensor
from movesmart_dagster.defs.automation_history import automation_history_sensor
from movesmart_dagster.defs.catalog import definitions as catalog
from movesmart_dagster.defs.checks import definitions as checks
from movesmart_dagster.defs.kafka import definitions as kafka
from movesmart_dagster.defs.maintenance import definitions as maintenance
from movesmart_dagster.defs.partitions import daily_partitions
from movesmart_dagster.defs.resources import build_resources
from movesmart_dagster.defs.streaming import definitions as streaming
from movesmart_dagster.settings import load_settings


def build_defs() -> dg.Definitions:
    settings = load_settings()
    partitions = daily_partitions(settings)
    analytics = analytics_definitions(settings)
    quality = checks.definitions(partitions)
    automated = dg.AssetSelection.assets(*(analytics.assets or [])) | dg.AssetSelection.checks(
        *(quality.asset_checks or [])
    )
    return dg.Definitions.merge(
        kafka.definitions(),
        streaming.definitions(settings),
        quality,
        catalog.definitions(settings),
        analytics,
        maintenance.definitions(partitions),
        alerts.definitions(),
        dg.Definitions(
            sensors=[automation_sensor(automated), automation_history_sensor(settings)],
            resources=build_resources(),
            executor=dg.in_process_executor,  # one process per run: a run's Spark session is shared
        ),
    )


defs = build_defs()
