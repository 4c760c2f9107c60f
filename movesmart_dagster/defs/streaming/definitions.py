"""The streaming integration's definitions: the tables it writes (with their freshness checks),
the long-running job and the sensor that supervises it."""

import dagster as dg

from movesmart_dagster.defs.streaming.assets import (
    table_freshness_checks,
    table_freshness_sensor,
    table_specs,
)
from movesmart_dagster.defs.streaming.job import streaming_job
from movesmart_dagster.defs.streaming.supervisor import build_supervisor_sensor
from movesmart_dagster.settings import Settings


def definitions(settings: Settings) -> dg.Definitions:
    freshness_checks = table_freshness_checks(settings)
    return dg.Definitions(
        assets=table_specs(settings),
        asset_checks=freshness_checks,
        jobs=[streaming_job],
        sensors=[build_supervisor_sensor(settings), table_freshness_sensor(freshness_checks)],
    )
