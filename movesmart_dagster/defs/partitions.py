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

A day is *closed* MOVESMART_LATE_GRACE_MINUTES after its end: late records may still land
before that. The analytics automation, the per-day checks' schedule and compaction all wait for
it, through the functions here, so the rule is written once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from movesmart_dagster.settings import Settings

# the analytics' freshness checks: each day's analytics exist by 03:00 UTC the day after
ANALYTICS_DEADLINE = time(3, 0)
ANALYTICS_DEADLINE_CRON = f"{ANALYTICS_DEADLINE.minute} {ANALYTICS_DEADLINE.hour} * * *"


def expected_analytics_day(now: datetime) -> date:
    """The newest day whose analytics the freshness checks expect at `now` (UTC): yesterday
    from the deadline on, the day before yesterday until then."""
    since_midnight = timedelta(hours=ANALYTICS_DEADLINE.hour, minutes=ANALYTICS_DEADLINE.minute)
    return (now.astimezone(UTC) - since_midnight).date() - timedelta(days=1)


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.start_date, timezone="UTC")


def late_grace(settings: Settings) -> timedelta:
    """How long after its end a day counts as closed (MOVESMART_LATE_GRACE_MINUTES)."""
    return timedelta(minutes=settings.late_grace_minutes)


def closes_at(day: date, grace: timedelta) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1) + grace


def day_closed(day: date, now: datetime, grace: timedelta) -> bool:
    return now >= closes_at(day, grace)


def closed_keys(partitions: dg.PartitionsDefinition, now: datetime, grace: timedelta) -> list[str]:
    """The partition keys of the days closed at `now`."""
    return partitions.get_partition_keys(current_time=now - grace)
