"""The freshness-check sensors keep their routine lines out of the terminal (issue 11, noise).

Dagster's own freshness sensors log one INFO line per check per tick, which its console handler
prints in `make dev`'s terminal. Evaluated here for real on a real instance: the sensor still asks
for the checks it should run, and nothing of it reaches the console.
"""

from __future__ import annotations

import logging

import dagster as dg

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.quiet_sensors import quiet


def test_freshness_sensors_ask_for_their_checks_without_a_console_line(capfd):
    for name, prefix in (
        ("tables_freshness_checks_sensor", "smartcity"),
        ("analytics_freshness_checks_sensor", "analytics"),
    ):
        sensor = defs.get_sensor_def(name)
        with (
            dg.instance_for_test() as instance,
            dg.build_sensor_context(instance=instance, definitions=defs) as ctx,
        ):
            result = sensor.evaluate_tick(ctx)
        (request,) = result.run_requests
        keys = request.asset_check_keys or []
        assert keys and all(k.name == "freshness_check" and k.asset_key.path[0] == prefix for k in keys), name
        assert len(keys) == (5 if prefix == "smartcity" else 4), name
    console = capfd.readouterr()
    assert "Freshness check" not in console.err + console.out


def test_quiet_keeps_warnings_and_the_lines_in_the_tick_log():
    seen: list[tuple[int, str]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelno, record.getMessage()))

    @dg.sensor(name="chatty", minimum_interval_seconds=45)
    def chatty(context: dg.SensorEvaluationContext):
        context.log.addHandler(Keep())
        context.log.info("routine")
        context.log.warning("wrong")
        return dg.SkipReason("nothing to do")

    wrapped = quiet(chatty)
    assert (wrapped.name, wrapped.minimum_interval_seconds) == ("chatty", 45)
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance) as ctx:
        data = wrapped.evaluate_tick(ctx)
    assert data.skip_message == "nothing to do"
    assert seen == [(logging.DEBUG, "routine"), (logging.WARNING, "wrong")]


def test_the_automation_sensor_evaluates_without_a_console_line(capfd, tmp_path, monkeypatch):
    """Dagster's automation sensor logs INFO lines every tick ("Prefetching asset records", one
    "evaluation result" per requested key): ours keeps them in the tick log only."""
    from datetime import UTC, datetime, timedelta

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    sensor = defs.get_sensor_def("day_partitions_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=dg.AssetKey(["smartcity", "weather_data"]), partition=day)
        )
        with dg.build_sensor_context(instance=instance, definitions=defs) as ctx:
            data = sensor.evaluate_tick(ctx)
    assert data.cursor  # it evaluated: the next tick continues from here
    console = capfd.readouterr()
    assert "Prefetching asset records" not in console.err + console.out
