"""The day-partition automation, evaluated tick by tick on a real Dagster instance.

The project's own definitions are evaluated (`dg.evaluate_automation_conditions`) against an
ephemeral instance that receives what the stream and the checks would report: per-day table
materializations and per-day check results. Each test states exactly which runs are requested.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from movesmart_dagster.defs.checks.checks import day_checks_job
from movesmart_dagster.defs.keys import ANALYTICS_KEYS, TABLE_KEYS

DAY = "2026-11-30"
WEATHER = TABLE_KEYS["weather_data"]
WEATHER_SUMMARY = ANALYTICS_KEYS["weather_summary"].to_user_string()  # reads weather_data only


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def defs(monkeypatch, home):
    for name in ("MOVESMART_LATE_GRACE_MINUTES", "MOVESMART_LATE_LOOKBACK_DAYS", "MOVESMART_START_DATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOVESMART_START_DATE", "2026-11-01")
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    from movesmart_dagster.definitions import build_defs

    return build_defs()


class Ticks:
    """Evaluates the automation sensor's target tick by tick, carrying the cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None
        sensor = next(s for s in defs.sensors if s.name == "day_partitions_automation")
        self.selection = sensor.asset_selection

    def at(self, when: datetime) -> set[tuple[str, str | None]]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs,
            instance=self.instance,
            asset_selection=self.selection,
            cursor=self.cursor,
            evaluation_time=when,
        )
        self.cursor = result.cursor
        out: set[tuple[str, str | None]] = set()
        for entity in result.results:  # one per asset or check: the partitions it requests
            key = entity.key
            name = (
                f"{key.asset_key.to_user_string()}:{key.name}"
                if isinstance(key, dg.AssetCheckKey)
                else key.to_user_string()
            )
            out |= {(name, day) for day in entity.true_subset.expensively_compute_partition_keys()}
        return out


def _land(instance: dg.DagsterInstance, table_key: dg.AssetKey, day: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=table_key, partition=day))


def _run_checks(defs: dg.Definitions, instance: dg.DagsterInstance, day: str) -> dict[str, bool]:
    """Runs the day's quality checks for real (DuckDB over that day's Iceberg files); returns
    the weather_data results."""
    result = day_checks_job(defs).execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False
    )
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations() if e.asset_key == WEATHER}


def _write_weather(home: Path, day: str, duplicate: bool = False) -> int:
    """Appends simulated weather rows of `day` to the real table (and one id twice if asked)."""
    from movesmart_dagster_tests.test_analytics import land_simulated_days

    start = datetime.fromisoformat(day).replace(tzinfo=UTC, hour=6)
    counts = land_simulated_days(home, start, vehicles=1, max_events=40, seed=len(day) + duplicate)
    if duplicate:
        from movesmart_dagster.settings import load_settings
        from movesmart_dagster.tables.catalog import load_table

        table = load_table(load_settings({"MOVESMART_HOME": str(home)}), "weather_data")
        rows = table.scan(limit=1).to_arrow()
        table.append(rows)
    return counts["weather_data"][day]


def _weather_checks() -> list[str]:
    from movesmart_dagster.defs.checks import quality

    return quality.rule_names("weather_data")


def _at(day: str, hour: int, minute: int = 0, second: int = 0) -> datetime:
    d = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return d + timedelta(hours=hour, minutes=minute, seconds=second)


def _plan_run(instance: dg.DagsterInstance, names: list[str], day: str) -> None:
    """What launching an analytics run records before it reads anything: a run and, per asset,
    its planned materialization of the day (Spark is not started here; the plan is what the
    automation looks at)."""
    # internal: the events `instance.create_run` logs for an asset run's plan
    from dagster._core.events import AssetMaterializationPlannedData, DagsterEvent, DagsterEventType
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.SUCCESS)
    for name in names:
        instance.report_dagster_event(
            DagsterEvent(
                DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
                job_name="__ASSET_JOB",
                event_specific_data=AssetMaterializationPlannedData(
                    dg.AssetKey.from_user_string(name), partition=day
                ),
            ),
            run.run_id,
        )


def _play(defs, instance, ticks: Ticks, times: list[datetime]) -> Counter:
    """Evaluates each tick; requested checks run at once, for real, and requested analytics get
    their run planned, as the sensor's runs would. Returns how often each (asset or check, day)
    was requested."""
    requested: Counter = Counter()
    for when in times:
        now = ticks.at(when)
        requested.update(now)
        for day in sorted({d for name, d in now if ":" in name}):
            _run_checks(defs, instance, day)
        for day in sorted({d for name, d in now if name.startswith("analytics/")}):
            _plan_run(instance, [n for n, d in now if d == day and n.startswith("analytics/")], day)
    return requested


def _minutes(day: str, hour: int, start: int, end: int) -> list[datetime]:
    """An evaluation every 30 s (the sensor's interval), off the minute ticks."""
    return [_at(day, hour, m, s) for m in range(start, end) for s in (15, 45)]


def test_only_the_changed_day_is_checked_and_only_at_the_check_tick(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.at(_at("2026-12-01", 10, 0, 5)) == set()  # nothing written: nothing runs
        _land(instance, WEATHER, DAY)
        assert ticks.at(_at("2026-12-01", 10, 0, 35)) == set()  # between two check ticks
        requested = ticks.at(_at("2026-12-01", 10, 1, 5))
        assert {r for r in requested if ":" in r[0]} == {
            (f"smartcity/weather_data:{n}", DAY) for n in _weather_checks()
        }


def test_a_closed_checked_day_is_computed_once_and_again_after_late_records(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.at(_at(DAY, 9, 0, 5))
        _land(instance, WEATHER, DAY)
        # the day ends; its checks run at the first tick; it is computed once its grace is over
        played = _play(defs, instance, ticks, _minutes("2026-12-01", 0, 0, 14))
        assert played == Counter({(f"smartcity/weather_data:{n}", DAY): 1 for n in _weather_checks()})
        played = _play(defs, instance, ticks, _minutes("2026-12-01", 0, 14, 40))
        assert played == Counter({(WEATHER_SUMMARY, DAY): 1})  # once, after 00:15
        # late records for the day, landing as the first run writes its result (the race the
        # end-to-end test caught: the asset's own materialization must not hide the change)
        _land(instance, WEATHER, DAY)
        _land(instance, ANALYTICS_KEYS["weather_summary"], DAY)
        # checked again, then recomputed once
        played = _play(defs, instance, ticks, _minutes("2026-12-01", 2, 0, 30))
        assert played == Counter(
            {(f"smartcity/weather_data:{n}", DAY): 1 for n in _weather_checks()} | {(WEATHER_SUMMARY, DAY): 1}
        )


def test_a_failing_day_blocks_only_its_own_analytics(defs, home):
    other = "2026-11-29"
    _write_weather(home, DAY, duplicate=True)
    _write_weather(home, other)
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.at(_at(DAY, 9, 0, 5))
        for day in (DAY, other):
            _land(instance, WEATHER, day)
        assert _run_checks(defs, instance, DAY) == {n: n != "no_duplicate_ids" for n in _weather_checks()}
        assert _run_checks(defs, instance, other) == {n: True for n in _weather_checks()}
        played = _play(defs, instance, ticks, _minutes("2026-12-01", 0, 14, 60))
        assert played == Counter({(WEATHER_SUMMARY, other): 1})  # the failed day waits for a change


def test_late_records_beyond_the_lookback_are_left_to_a_backfill(defs):
    old = "2026-11-20"  # 11 days before the evaluation; the lookback is 7
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.at(_at("2026-12-01", 9, 0, 5))
        _land(instance, WEATHER, old)
        played = _play(defs, instance, ticks, _minutes("2026-12-01", 9, 0, 5))
        # its checks still run (quality matters for every day); its analytics wait for a backfill
        assert played == Counter({(f"smartcity/weather_data:{n}", old): 1 for n in _weather_checks()})
