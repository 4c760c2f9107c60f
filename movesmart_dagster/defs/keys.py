"""Asset keys and group names, spelled once.

Why a module of constants: the supervisor, the alert sensor, the checks and the tests all
refer to the same assets; a typo in a key silently creates a new, unrelated asset.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.schemas import ALL_TABLES, QUARANTINE_TABLE, TABLES, TOPICS

GROUP_KAFKA = "kafka"
GROUP_TABLES = "tables"
GROUP_CATALOG = "catalog"
GROUP_ANALYTICS = "analytics"

TOPIC_KEYS: dict[str, dg.AssetKey] = {t: dg.AssetKey(["kafka", t]) for t in TOPICS}
TABLE_KEYS: dict[str, dg.AssetKey] = {t: dg.AssetKey(["smartcity", t]) for t in ALL_TABLES}
RECORD_TABLE_KEYS: dict[str, dg.AssetKey] = {t: TABLE_KEYS[t] for t in TABLES}
QUARANTINE_KEY = TABLE_KEYS[QUARANTINE_TABLE]
GLUE_TABLES_KEY = dg.AssetKey(["catalog", "glue_tables"])
DEV_SMARTCITY_KEY = dg.AssetKey(["catalog", "dev_smartcity"])

ANALYTICS_NAMES: tuple[str, ...] = (
    "vehicle_trip_summary",
    "hourly_speed_by_area",
    "weather_summary",
    "emergency_incident_summary",
)
ANALYTICS_KEYS: dict[str, dg.AssetKey] = {n: dg.AssetKey(["analytics", n]) for n in ANALYTICS_NAMES}

STREAMING_JOB_NAME = "streaming_job"
# set on a run by `make dev` before it terminates it for a shutdown: the streaming op then ends
# the run as a success (it ran until the platform stopped) instead of logging a cancellation
STOP_REASON_TAG = "movesmart/stop_reason"
STOP_REASON_SHUTDOWN = "shutdown"
ANALYTICS_JOB_NAME = "daily_analytics_job"

GROUP_MAINTENANCE = "maintenance"
# the Dagster pool of every maintenance asset: one at a time (`concurrency: pools:` in the instance
# config), since two rewrites of the same day at once fail the later commit
MAINTENANCE_POOL = "iceberg_table_maintenance"
COMPACTION_KEY = dg.AssetKey(["maintenance", "table_compaction"])
SNAPSHOT_EXPIRY_KEY = dg.AssetKey(["maintenance", "table_snapshots"])
OPEN_DAY_COMPACTION_KEY = dg.AssetKey(["maintenance", "open_day_compaction"])
