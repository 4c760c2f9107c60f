"""The one daily partitions definition of the tables and the analytics.

Why one: a table's day and the analytics day computed from it are the same partition key, so
lineage, backfills and automation line up day for day. Days are UTC, from
MOVESMART_START_DATE — the streaming job quarantines any record whose event time is earlier
(`contract.EventTimeRule`), so no table holds a day before the first partition.

Why the partitions are the closed days (Dagster's default end, yesterday): the analytics'
schedule computes the newest partition and their freshness checks expect it, which must be a
day that is over. The stream still reports materializations of the current day (and of days
up to MOVESMART_MAX_FUTURE_SKEW ahead) under their partition keys as the rows arrive: Dagster
stores them (a materialization may name a day the definition does not list yet) and shows them
in the table's events at once; the day joins the partition list, already materialized, when it
ends.
"""

from __future__ import annotations

import dagster as dg

from movesmart_dagster.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.start_date, timezone="UTC")
