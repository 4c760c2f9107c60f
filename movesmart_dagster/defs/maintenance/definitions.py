"""The maintenance definitions: per-day compaction of closed days (with its file-size checks), the
hourly compaction of the open days and the hourly snapshot expiry, each with its job and schedule."""

import dagster as dg

from movesmart_dagster.defs.maintenance.compaction import compaction_definitions
from movesmart_dagster.defs.maintenance.open_day import open_day_definitions
from movesmart_dagster.defs.maintenance.snapshots import snapshot_definitions


def definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions.merge(
        compaction_definitions(partitions), open_day_definitions(), snapshot_definitions()
    )
