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
twice for one change, and no change is lost (`SourceChangedSinceLastRun`: the event log's order). The conditions are evaluated by
one automation sensor, running by default, on the code server (`DayClosed` is Python).
The daily analytics schedule is gone: it computed "yesterday" only, and would duplicate the
first run of each day that the automation already starts; backfills still use the job.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from movesmart_dagster.defs.partitions import closed_keys, late_grace
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
        closed = closed_keys(partitions, context.evaluation_time, self.grace)
        return dg.AutomationResult(
            context,
            true_subset=context.candidate_subset.compute_intersection_with_partition_keys(set(closed)),
        )


class SourceChangedSinceLastRun(dg.AutomationCondition):
    """True for a day whose source table day was materialized after this asset's latest planned
    run of that day (or that was never planned).

    Why not `any_deps_updated().since_last_handled()`: that latch is reset by the asset's own
    materialization, and when late records landed in the same 30-second tick as the end of the
    day's first run (the end-to-end test caught it), the reset won and the change was lost. The
    event log's order is exact: a run's planned materialization is logged when the run is created,
    before it reads the table, so a source materialization logged after it may be missing from
    that run and asks for one more; one logged before it is in the run. No change is ever lost; a
    change that raced a starting run costs at most one extra run."""

    @property
    def description(self) -> str:
        return "Source day changed since this day's last run"

    @property
    def name(self) -> str:
        return "source_changed_since_last_run"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        instance = context.asset_graph_view.instance
        key = context.key
        parents = list(context.asset_graph.get(key).parent_keys)
        changed = set()
        for day in context.candidate_subset.expensively_compute_partition_keys():
            planned = instance.get_latest_planned_materialization_info(key, day)
            for parent in parents:
                latest = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=parent, asset_partitions=[day]), limit=1
                ).records
                if latest and (planned is None or latest[0].storage_id > planned.storage_id):
                    changed.add(day)
        return dg.AutomationResult(
            context, true_subset=context.candidate_subset.compute_intersection_with_partition_keys(changed)
        )


def day_closed(settings: Settings) -> DayClosed:
    return DayClosed(late_grace(settings))


def analytics_condition(settings: Settings) -> dg.AutomationCondition:
    """Compute a closed day once, then once per change of its source day, once its checks pass.

    The cheap conditions come first: each narrows the days the next one looks at, so the event
    log is only asked about closed days of the lookback that hold data."""
    return (
        dg.AutomationCondition.in_latest_time_window(timedelta(days=settings.late_lookback_days))
        & day_closed(settings)
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.in_progress()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & SourceChangedSinceLastRun()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
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
