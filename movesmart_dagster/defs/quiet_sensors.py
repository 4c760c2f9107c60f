"""Sensors whose routine ticks stay out of the terminal, but not out of the UI.

Dagster echoes every INFO line a sensor logs on the code server's console (its console handler
is fixed at INFO), and the freshness-check sensors Dagster builds log one INFO line per check
per tick ("… cannot be overdue again until …", "… has not been updated since …"): with nine
checks that is a wall of lines a minute in `make dev`'s terminal, burying what matters.
`quiet` wraps such a sensor: its INFO lines become DEBUG records, which the tick's captured log
(shown in the UI) still keeps and the console drops. Warnings and errors pass unchanged. The
automation sensor logs two lines a tick and one per requested check ("… evaluation result: 1
requested"): `QuietAutomationConditionSensor` is the same sensor with the same filter.
"""

from __future__ import annotations

import logging

import dagster as dg


class _InfoAsDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def quiet(sensor: dg.SensorDefinition) -> dg.SensorDefinition:
    """The same sensor (name, targets, interval, default status), its INFO lines demoted."""

    def evaluate(context: dg.SensorEvaluationContext):
        context.log.addFilter(_InfoAsDebug())
        return sensor(context)

    return dg.SensorDefinition(
        name=sensor.name,
        evaluation_fn=evaluate,
        asset_selection=sensor.asset_selection,
        minimum_interval_seconds=sensor.minimum_interval_seconds,
        description=sensor.description,
        default_status=sensor.default_status,
    )


class QuietAutomationConditionSensor(dg.AutomationConditionSensorDefinition):
    """An automation condition sensor (evaluated on the code server) whose INFO lines are DEBUG."""

    def evaluate_tick(self, context: dg.SensorEvaluationContext):  # type: ignore[override]
        context.log.addFilter(_InfoAsDebug())
        return super().evaluate_tick(context)
