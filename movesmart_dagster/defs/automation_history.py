"""Keeps the automation sensor's evaluation history bounded.

The automation sensor (`automation.py`) runs on the code server, and Dagster stores every one
of its evaluations — the condition tree of each automated check and analytics asset, ~30-80 KB
each, ~0.5 MB a tick while the stream changes today's partitions — in the instance's schedule
storage. Dagster's own purge (30 days) runs only in the daemon's evaluation path, so these rows
were never deleted: the soak measured `schedules.db` growing ~54 MB an hour. This sensor deletes
evaluations older than MOVESMART_AUTOMATION_HISTORY (default 6 hours) once an hour; SQLite reuses
the freed pages, so the file stops growing once it holds that much history.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from movesmart_dagster.settings import Settings

AUTOMATION_HISTORY_SENSOR_NAME = "automation_history_retention"
PURGE_INTERVAL_SECONDS = 3600


def purge_automation_history(instance: dg.DagsterInstance, settings: Settings, now: datetime) -> datetime:
    """Delete the automation evaluations stored before `now - MOVESMART_AUTOMATION_HISTORY`."""
    cutoff = now - settings.automation_history
    storage = instance.schedule_storage
    if storage is not None and storage.supports_auto_materialize_asset_evaluations:
        storage.purge_asset_evaluations(before=cutoff.timestamp())
    return cutoff


def automation_history_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=AUTOMATION_HISTORY_SENSOR_NAME,
        minimum_interval_seconds=PURGE_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Hourly: deletes the automation sensor's evaluations older than "
            f"MOVESMART_AUTOMATION_HISTORY ({settings.automation_history}), so the instance's "
            "schedule storage stays bounded. Launches no run."
        ),
    )
    def automation_history_retention(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        cutoff = purge_automation_history(context.instance, settings, datetime.now(UTC))
        return dg.SkipReason(f"automation evaluations before {cutoff:%Y-%m-%d %H:%M} UTC deleted")

    return automation_history_retention
