"""The quality checks' definitions: one partitioned multi-check per table and quarantine."""

import dagster as dg

from movesmart_dagster.defs.checks.checks import table_checks


def definitions(partitions: dg.DailyPartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(asset_checks=table_checks(partitions))
