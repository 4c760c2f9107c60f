"""Declarative automation of the day partitions: per-day checks, then the day's analytics.

Why declarative automation and not schedules: what should run depends on which days changed,
which Dagster already knows from the stream's per-day materializations
(`defs/streaming/materializations.py`) and the checks' per-day results. The chain for a day D:

1. the stream reports rows for D (a materialization of each table's partition D; a new one
   clears D's check results);
2. at the next CHECK_CRON tick (each minute), every table whose partition D has no check result for its latest
   materialization gets its quality checks run for D (`table_checks`) — only the changed days,
   so the cost follows new data, not the history;
3. once D is closed (MOVESMART_LATE_GRACE_MINUTES after its end) and D's blocking checks passed,
   each analytics asset computes D: the first time, and again once for each later change of D
   (late records), within MOVESMART_LATE_LOOKBACK_DAYS; a day whose checks fail is not computed
   and blocks nothing else.

Nothing runs for a day nobody wrote to (no materialization: `any_deps_missing`), nothing runs
twice for one change (`since_last_handled`, `in_progress`). The conditions are evaluated by
one automation sensor, running by default, on the code server (`DayClosed` is Python).
The daily analytics schedule is gone: it computed "yesterday" only, and would duplicate the
first run of each day that the automation already starts; backfills still use the job.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from movesmart_dagster.defs.quiet_sensors import QuietAutomationConditionSensor
from movesmart_dagster.settings import Settings

# how often the changed days' checks run: at most one check run per day partition per tick. Every
# minute is cheap: only closed days that changed since their last result are checked (the current
# day is not a partition until it ends), which at steady state is none; late records for a day
# reach it at most once a minute (the stream's coalesced materializations).
CHECK_CRON = "* * * * *"
AUTOMATION_SENSOR_NAME = "day_partitions_automation"
AUTOMATION_INTERVAL_SECONDS = 30


class DayClosed(dg.AutomationCondition):
    """True for a day partition once `grace` has passed since its end (UTC)."""

    def __init__(self, grace: timedelta) -> None:
        self.grace = grace

    @property
    def description(self) -> str:
        return f"Day ended at least {self.grace} ago"

    @property
    def name(self) -> str:
        return "day_closed"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        partitions = context.partitions_def
        if partitions is None:
            return dg.AutomationResult(context, true_subset=context.get_empty_subset())
        closed = partitions.get_partition_keys(current_time=context.evaluation_time - self.grace)
        return dg.AutomationResult(
            context,
            true_subset=context.candidate_subset.compute_intersection_with_partition_keys(set(closed)),
        )


def day_closed(settings: Settings) -> DayClosed:
    return DayClosed(timedelta(minutes=settings.late_grace_minutes))


def analytics_condition(settings: Settings) -> dg.AutomationCondition:
    """Compute a closed day once, then once per change of its source day, once its checks pass."""
    closed = day_closed(settings)
    changed = (closed.newly_true() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    return (
        dg.AutomationCondition.in_latest_time_window(timedelta(days=settings.late_lookback_days))
        & closed
        & changed.with_label("closed_or_source_changed_since_last_run")
        & ~dg.AutomationCondition.any_deps_missing()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("closed_day_changed_and_checked")


def check_condition() -> dg.AutomationCondition:
    """Run a day's check at the next tick when its table's day has no result for its latest data."""
    evaluated = dg.AutomationCondition.check_passed() | dg.AutomationCondition.check_failed()
    return (
        dg.AutomationCondition.cron_tick_passed(CHECK_CRON)
        & ~evaluated.with_label("evaluated_for_latest_data")
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("changed_day_unchecked")


def automation_sensor(target: dg.AssetSelection) -> dg.AutomationConditionSensorDefinition:
    return QuietAutomationConditionSensor(
        AUTOMATION_SENSOR_NAME,
        target=target,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
        use_user_code_server=True,
        description="Per-day checks of changed table days, then the analytics of closed, checked days.",
    )
