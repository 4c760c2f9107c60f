"""The alerting definitions: the state-change alert sensor and the run-failure sensor."""

import dagster as dg

from movesmart_dagster.defs.alerts.sensor import build_alert_sensor, run_failure_alerts
from movesmart_dagster.defs.keys import DEV_SMARTCITY_KEY, TABLE_KEYS


def definitions() -> dg.Definitions:
    return dg.Definitions(
        sensors=[build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY]), run_failure_alerts]
    )
