"""The maintenance definitions: per-day compaction (with its file-size checks) and the daily
snapshot expiry, each with its job and schedule."""

import dagster as dg

from movesmart_dagster.defs.maintenance.compaction import compaction_definitions
from movesmart_dagster.defs.maintenance.snapshots import snapshot_definitions


def definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions.merge(compaction_definitions(partitions), snapshot_definitions())
