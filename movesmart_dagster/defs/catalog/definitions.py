"""The catalog integration's definitions: the Glue tables and `dev_smartcity`, their job and schedule."""

import dagster as dg

from movesmart_dagster.defs.catalog.assets import catalog_assets, catalog_job
from movesmart_dagster.defs.schedules.schedules import schedules
from movesmart_dagster.settings import Settings


def definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(assets=catalog_assets(settings), jobs=[catalog_job], schedules=schedules())
