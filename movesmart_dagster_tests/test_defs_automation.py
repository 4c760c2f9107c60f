"""The day-partition automation, evaluated tick by tick on a real Dagster instance.

The project's own definitions are evaluated (`dg.evaluate_automation_conditions`) against an
ephemeral instance that receives what the stream and the checks would report: per-day table
materializations and per-day check results. Each test states exactly which runs are requested.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

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
    graph = defs.resolve_asset_graph()
    checks = {k for k in graph.asset_check_keys if graph.get(k).partitions_def is not None}
    # the run the automation sensor launches: the implicit asset job, those checks, one day
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=checks
    )
    result = job.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
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


def test_only_the_changed_day_is_checked_and_only_at_the_check_tick(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        assert ticks.at(_at("2026-12-01", 10, 1)) == set()  # nothing written: nothing runs
        _land(instance, WEATHER, DAY)
        assert ticks.at(_at("2026-12-01", 10, 5)) == set()  # between two check ticks
        requested = ticks.at(_at("2026-12-01", 10, 10, 5))
        assert requested == {(f"smartcity/weather_data:{n}", DAY) for n in _weather_checks()}


def test_a_closed_checked_day_is_computed_once_and_again_after_late_records(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.at(_at(DAY, 9))
        _land(instance, WEATHER, DAY)
        assert _run_checks(defs, instance, DAY) == {n: True for n in _weather_checks()}
        # the day is over but within its grace: not yet
        assert ticks.at(_at("2026-12-01", 0, 10)) == set()
        # closed and checked: computed once
        assert ticks.at(_at("2026-12-01", 0, 16)) == {(WEATHER_SUMMARY, DAY)}
        assert ticks.at(_at("2026-12-01", 0, 17)) == set()  # nothing changed: nothing runs
        assert ticks.at(_at("2026-12-01", 2, 1)) == set()
        # late records for the day: its check results are reset, so its checks run at the next
        # check tick, and the day is recomputed once they passed
        _land(instance, WEATHER, DAY)
        assert ticks.at(_at("2026-12-01", 2, 5)) == set()
        assert ticks.at(_at("2026-12-01", 2, 10, 5)) == {
            (f"smartcity/weather_data:{n}", DAY) for n in _weather_checks()
        }
        assert ticks.at(_at("2026-12-01", 2, 10, 30)) == set()  # the analytics wait for the results
        assert _run_checks(defs, instance, DAY) == {n: True for n in _weather_checks()}
        assert ticks.at(_at("2026-12-01", 2, 11)) == {(WEATHER_SUMMARY, DAY)}
        assert ticks.at(_at("2026-12-01", 2, 12)) == set()  # once per change
        assert ticks.at(_at("2026-12-01", 2, 20)) == set()


def test_a_failing_day_blocks_only_its_own_analytics(defs, home):
    other = "2026-11-29"
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        ticks.at(_at(DAY, 9))
        _write_weather(home, DAY, duplicate=True)
        _write_weather(home, other)
        for day in (DAY, other):
            _land(instance, WEATHER, day)
        assert _run_checks(defs, instance, DAY) == {n: n != "no_duplicate_ids" for n in _weather_checks()}
        assert _run_checks(defs, instance, other) == {n: True for n in _weather_checks()}
        assert ticks.at(_at("2026-12-01", 0, 16)) == {(WEATHER_SUMMARY, other)}
        assert ticks.at(_at("2026-12-01", 1, 0)) == set()  # the failed day waits for a change


def test_late_records_beyond_the_lookback_are_left_to_a_backfill(defs):
    with dg.instance_for_test() as instance:
        ticks = Ticks(defs, instance)
        old = "2026-11-20"  # 10 days before the evaluation; the lookback is 7
        ticks.at(_at("2026-12-01", 9))
        _land(instance, WEATHER, old)
        assert _run_checks(defs, instance, old) == {n: True for n in _weather_checks()}
        assert ticks.at(_at("2026-12-01", 9, 1)) == set()
