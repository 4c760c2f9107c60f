"""The schedules: table quality every 10 min, catalog every 30 min, analytics daily at 00:30 UTC.

Kept in one list so a person reading `defs/` sees every timer in one place; each schedule is
defined beside the job it runs.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.defs.catalog.assets import catalog_schedule
from movesmart_dagster.defs.checks.checks import table_checks_schedule


def schedules(analytics_schedule: dg.ScheduleDefinition) -> list[dg.ScheduleDefinition]:
    return [table_checks_schedule, catalog_schedule, analytics_schedule]
