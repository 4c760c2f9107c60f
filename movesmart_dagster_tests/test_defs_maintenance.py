"""Table maintenance under Dagster, on real Iceberg tables with real Spark.

A closed day is landed as many small appends (one pyiceberg append per table per landing, as the
stream's micro-batches leave it); the maintenance job of that day then compacts it through the
code location's own job and resources, and the per-(table, day) file check fails before and
passes after. Files, bytes and rows are read back from Iceberg metadata and a full scan.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.keys import (
    COMPACTION_KEY,
    OPEN_DAY_COMPACTION_KEY,
    SNAPSHOT_EXPIRY_KEY,
    TABLE_KEYS,
)
from movesmart_dagster.defs.maintenance import compaction, open_day
from movesmart_dagster.defs.partitions import closed_keys, daily_partitions, day_closed, late_grace
from movesmart_dagster.defs.resources import build_resources
from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import load_settings
from movesmart_dagster.spark_session import build_spark
from movesmart_dagster.tables.catalog import event_time_column, load_table
from movesmart_dagster_tests.test_analytics import land_simulated_days

DAY = "2024-03-10"
LANDINGS = 5  # appends of the day, at 01:00, 03:00, ... each a few one-minute ticks long


@pytest.fixture(scope="module")
def spark() -> Iterator[None]:
    """One session for the module, stopped at its end (later modules build their own)."""
    session = build_spark(load_settings({}), "movesmart-test-maintenance")
    yield
    from pyspark.sql import SparkSession

    (SparkSession.getActiveSession() or session).stop()


def count_day_rows(table: str, day: str = DAY) -> int:
    """Rows of `day` by a full scan of the table (not its metadata)."""
    settings = load_settings()
    column = event_time_column(table)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    values = load_table(settings, table).scan(selected_fields=(column,)).to_arrow().column(column).to_pylist()
    return sum(1 for v in values if v is not None and start <= v < start + timedelta(days=1))


def check_results(instance: dg.DagsterInstance) -> dict[str, list[bool]]:
    """Every evaluation of each table's file check for DAY, oldest first."""
    out: dict[str, list[bool]] = {}
    for table in ALL_TABLES:
        records = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(COMPACTION_KEY, compaction.check_name(table)), limit=10
        )
        out[table] = [r.event.dagster_event.event_specific_data.passed for r in reversed(records) if r.event]
    return out


def test_a_closed_day_of_small_appends_is_compacted_and_checked(
    spark: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    landed: dict[str, int] = {}
    appends: dict[str, int] = {}
    for i in range(LANDINGS):
        start = datetime.fromisoformat(DAY).replace(hour=1 + 2 * i, tzinfo=UTC)
        counts = land_simulated_days(home, start, vehicles=2, seed=20 + i, max_events=40)
        for table, by_day in counts.items():
            assert set(by_day) == {DAY}, (table, by_day)
            landed[table] = landed.get(table, 0) + by_day[DAY]
            appends[table] = appends.get(table, 0) + 1
    settings = load_settings()
    before = {t: compaction.day_files(settings, t, date.fromisoformat(DAY)) for t in ALL_TABLES}
    # one file per append: gps/vehicle/weather/traffic in every landing, quarantine in none
    assert {t: before[t].files for t in ALL_TABLES} == {t: appends.get(t, 0) for t in ALL_TABLES}
    assert all(appends[t] == LANDINGS for t in ("gps_data", "vehicle_data", "weather_data", "traffic_data"))
    assert {t: before[t].rows for t in landed} == landed
    rows_before = {t: count_day_rows(t) for t in ALL_TABLES}
    assert rows_before == {t: landed.get(t, 0) for t in ALL_TABLES}

    job = defs.resolve_job_def(compaction.JOB_NAME)
    with dg.instance_for_test() as instance:
        # the checks alone first, as *Execute* on a check of that day runs them
        # (a run of checks alone infers no partitions definition: the day is given as the run's tag)
        checks = compaction.compaction_definitions(daily_partitions(settings))
        first = dg.materialize(
            [*checks.assets, *checks.asset_checks],
            selection=dg.AssetSelection.checks(*checks.asset_checks),
            tags={"dagster/partition": DAY},
            instance=instance,
            resources=build_resources(),
        )
        assert first.success
        assert not instance.fetch_materializations(COMPACTION_KEY, limit=1).records
        assert check_results(instance) == {t: [before[t].files <= 1 + 1] for t in ALL_TABLES}
        assert check_results(instance)["vehicle_data"] == [False]

        result = job.execute_in_process(instance=instance, partition_key=DAY)
        assert result.success
        (record,) = instance.fetch_materializations(COMPACTION_KEY, limit=5).records
        assert record.partition_key == DAY
        md = record.asset_materialization.metadata
        after = {t: compaction.day_files(load_settings(), t, date.fromisoformat(DAY)) for t in ALL_TABLES}
        assert {t: after[t].files for t in ALL_TABLES} == {t: min(before[t].files, 1) for t in ALL_TABLES}
        assert (
            md["files_before"].value
            == sum(b.files for b in before.values())
            == 4 * LANDINGS + appends.get("emergency_data", 0)
        )
        assert md["files_after"].value == sum(1 for b in before.values() if b.files)
        assert md["bytes_before"].value == sum(b.bytes for b in before.values())
        assert md["bytes_after"].value == sum(a.bytes for a in after.values())
        assert f"| vehicle_data | {LANDINGS} | 1 | {before['vehicle_data'].bytes} |" in md["tables"].value
        image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", md["chart"].value)
        assert image and base64.b64decode(image.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
        # the same rows, by metadata and by a scan
        assert {t: after[t].rows for t in ALL_TABLES} == {t: before[t].rows for t in ALL_TABLES}
        assert {t: count_day_rows(t) for t in ALL_TABLES} == rows_before
        # every table's check of the day: failed before (where it had more files than allowed), passes now
        results = check_results(instance)
        assert results == {t: [before[t].files <= 2, True] for t in ALL_TABLES}
        evaluation = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(COMPACTION_KEY, compaction.check_name("vehicle_data")), limit=1
        )[0]
        check_md = evaluation.event.dagster_event.event_specific_data.metadata
        assert check_md["files"].value == 1 and check_md["allowed_files"].value == 2
        assert check_md["rows"].value == landed["vehicle_data"]


def test_the_open_days_are_compacted_while_the_closed_day_asset_stays_untouched(
    spark: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three appends a few minutes old (today, or yesterday too just after midnight: both open)
    are rewritten by the hourly open-day job into one file per table and day, with the same rows;
    the closed-day compaction asset is not materialized for them."""
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    start = datetime.now(UTC) - timedelta(minutes=5)
    landed: dict[tuple[str, str], int] = {}
    for i in range(3):
        for table, by_day in land_simulated_days(home, start, vehicles=2, seed=30 + i, max_events=24).items():
            for day, n in by_day.items():
                landed[(table, day)] = landed.get((table, day), 0) + n
    settings = load_settings()
    days = sorted({day for _, day in landed})
    assert [date.fromisoformat(d) for d in days] == [
        d for d in open_day.open_days(datetime.now(UTC), late_grace(settings)) if d.isoformat() in days
    ]

    def files() -> dict[tuple[str, str], compaction.DayFiles]:
        return {(t, d): compaction.day_files(load_settings(), t, date.fromisoformat(d)) for t, d in landed}

    before = files()
    assert {k: f.rows for k, f in before.items()} == landed
    assert max(f.files for f in before.values()) == 3  # an append each time a table got rows
    scanned = {(t, d): count_day_rows(t, d) for t, d in landed}
    assert scanned == landed

    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(open_day.JOB_NAME).execute_in_process(instance=instance)
        assert result.success
        assert not instance.fetch_materializations(COMPACTION_KEY, limit=1).records
        (record,) = instance.fetch_materializations(OPEN_DAY_COMPACTION_KEY, limit=5).records
    after = files()
    assert {k: f.files for k, f in after.items()} == {k: 1 for k in landed}
    assert {k: f.rows for k, f in after.items()} == landed
    assert {(t, d): count_day_rows(t, d) for t, d in landed} == landed
    md = record.asset_materialization.metadata
    assert md["files_before"].value == sum(f.files for f in before.values())
    assert md["files_after"].value == len(landed)
    assert set(days) <= set(md["days"].value.split(", "))
    assert (
        f"| vehicle_data | {before[('vehicle_data', days[-1])].files} | 1 |" in md[f"tables_{days[-1]}"].value
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2024, 3, 12, 0, 10, tzinfo=UTC), [date(2024, 3, 11), date(2024, 3, 12)]),
        (datetime(2024, 3, 12, 0, 15, tzinfo=UTC), [date(2024, 3, 12)]),
        (datetime(2024, 3, 12, 23, 59, tzinfo=UTC), [date(2024, 3, 12)]),
    ],
)
def test_open_days_are_today_and_yesterday_within_its_grace(now: datetime, expected: list[date]) -> None:
    assert open_day.open_days(now, timedelta(minutes=15)) == expected


def test_the_schedule_asks_for_yesterday_and_days_changed_since_their_compaction() -> None:
    partitions = daily_partitions(load_settings({}))
    now = datetime(2024, 3, 12, 0, 45, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        # nothing compacted, no table reported: yesterday only
        assert compaction.days_to_compact(instance, partitions, now) == ["2024-03-11"]
        instance.report_runless_asset_event(dg.AssetMaterialization(COMPACTION_KEY, partition="2024-03-11"))
        assert compaction.days_to_compact(instance, partitions, now) == []
        # a late record lands in a day of last week: that day again, once
        instance.report_runless_asset_event(
            dg.AssetMaterialization(TABLE_KEYS["gps_data"], partition="2024-03-07")
        )
        assert compaction.days_to_compact(instance, partitions, now) == ["2024-03-07"]
        instance.report_runless_asset_event(dg.AssetMaterialization(COMPACTION_KEY, partition="2024-03-07"))
        assert compaction.days_to_compact(instance, partitions, now) == []
        # beyond the lookback: left alone
        instance.report_runless_asset_event(
            dg.AssetMaterialization(TABLE_KEYS["gps_data"], partition="2024-03-01")
        )
        assert compaction.days_to_compact(instance, partitions, now) == []
        # before yesterday's grace is over, yesterday is not closed: the day before is the newest
        early = datetime(2024, 3, 12, 0, 10, tzinfo=UTC)
        assert compaction.days_to_compact(instance, partitions, early) == ["2024-03-10"]
        # the code location's schedule asks for those days, one run each
        instance.report_runless_asset_event(
            dg.AssetMaterialization(TABLE_KEYS["weather_data"], partition="2024-03-09")
        )
        schedule = defs.resolve_schedule_def("table_maintenance_schedule")
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()
        )
        requests = schedule.evaluate_tick(context).run_requests or []
        assert schedule.job_name == compaction.JOB_NAME
        assert [r.partition_key for r in requests] == ["2024-03-09"]


@pytest.mark.parametrize("minutes", [None, "40"])
def test_day_closed_after_grace(monkeypatch: pytest.MonkeyPatch, minutes: str | None) -> None:
    if minutes is None:
        monkeypatch.delenv("MOVESMART_LATE_GRACE_MINUTES", raising=False)
    else:
        monkeypatch.setenv("MOVESMART_LATE_GRACE_MINUTES", minutes)
    grace = timedelta(minutes=float(minutes or 15))  # the documented default: 15
    assert late_grace(load_settings()) == grace
    day = date(2024, 3, 11)
    end = datetime(2024, 3, 12, tzinfo=UTC)
    assert not day_closed(day, end, grace)
    assert not day_closed(day, end + grace - timedelta(seconds=1), grace)
    assert day_closed(day, end + grace, grace)
    # the automation's view of the same rule: the day is a closed partition key exactly then
    days = dg.DailyPartitionsDefinition(start_date="2024-03-01", timezone="UTC")
    assert closed_keys(days, end + grace - timedelta(seconds=1), grace)[-1] == "2024-03-10"
    assert closed_keys(days, end + grace, grace)[-1] == "2024-03-11"


def test_a_day_not_closed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Today (not a partition yet, but a run can name it by tag) is refused before any Spark work."""
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    today = datetime.now(UTC).date()
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(compaction.JOB_NAME).execute_in_process(
            instance=instance, tags={"dagster/partition": today.isoformat()}, raise_on_error=False
        )
        assert not result.success
        (failure,) = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "maintenance__table_compaction"
        closes = f"{today + timedelta(days=1)} 00:15 UTC"
        assert (
            f"{today} is not closed yet: it closes at {closes}" in failure.event_specific_data.error.message
        )
        assert not instance.fetch_materializations(COMPACTION_KEY, limit=1).records
    assert not (tmp_path / "home" / "catalog").exists()  # no catalog opened, no Spark started


def test_snapshot_expiry_and_orphans(spark: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    monkeypatch.setenv("MOVESMART_SNAPSHOT_RETENTION", "PT0S")
    for i in range(3):
        start = datetime.fromisoformat(DAY).replace(hour=1 + 2 * i, tzinfo=UTC)
        land_simulated_days(home, start, vehicles=2, seed=40 + i, max_events=40)
    settings = load_settings()
    gps = load_table(settings, "gps_data")
    assert len(gps.snapshots()) == 3
    rows = gps.scan().to_arrow().num_rows
    data_dir = home / "warehouse" / settings.glue_database / "gps_data" / "data"
    old, young = data_dir / "planted-old.parquet", data_dir / "planted-young.parquet"
    old.write_bytes(b"not referenced")
    young.write_bytes(b"not referenced")
    four_days_ago = (datetime.now(UTC) - timedelta(days=4)).timestamp()
    os.utime(old, (four_days_ago, four_days_ago))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("table_snapshots_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"maintenance__table_snapshots": {"config": {"retain_last": 1}}}},
        )
        assert result.success
        (record,) = instance.fetch_materializations(SNAPSHOT_EXPIRY_KEY, limit=5).records
        md = record.asset_materialization.metadata
    after = load_table(load_settings(), "gps_data")
    assert len(after.snapshots()) == 1
    assert after.current_snapshot().snapshot_id == gps.current_snapshot().snapshot_id
    assert after.scan().to_arrow().num_rows == rows
    assert not old.exists() and young.exists()
    assert md["orphan_files_removed"].value == 1
    assert "| gps_data | 3 | 1 | 1 |" in md["tables"].value
    assert md["snapshots_after"].value == sum(
        1 for t in ALL_TABLES if load_table(load_settings(), t).current_snapshot() is not None
    )
