"""The schedules: the catalog every 30 minutes (maintenance keeps its own beside its job).

Kept in one list so a person reading `defs/` sees the timers in one place; each schedule is
defined beside the job it runs. The per-day checks and the analytics have no schedule: the
automation sensor runs them for the days that changed (`defs/automation.py`).
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.defs.catalog.assets import catalog_schedule


def schedules() -> list[dg.ScheduleDefinition]:
    return [catalog_schedule]
