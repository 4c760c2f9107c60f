"""Daily analytics: the pure Spark functions on known inputs, and the assets materialized on
days produced by the simulator.

`land_simulated_days` writes what the streaming job writes (the contract applied to the
simulator's records, stored with the tables' Arrow schema under event_date folders), so
these tests need no broker; the end-to-end path through Kafka and the real streaming job is
covered by the CLI backfill test in test_e2e_backfill.py.
"""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movesmart_dagster.analytics import compute
from movesmart_dagster.contract import validate
from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.keys import ANALYTICS_KEYS
from movesmart_dagster.schemas import RECORDS_BY_TOPIC, arrow_table_schema
from movesmart_dagster.settings import load_settings
from movesmart_dagster.simulator.fleet import SimConfig, iter_records
from movesmart_dagster.spark_session import build_spark


def land_simulated_days(
    warehouse: Path, start: datetime, vehicles: int = 3, seed: int = 7, max_events: int = 1500
) -> dict:
    """Simulator records -> contract -> Parquet per table and event_date; returns rows per table/day."""
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    now = datetime.now(UTC)
    config = SimConfig(
        vehicles=vehicles, seed=seed, start_time=start, tick_seconds=60.0, max_events=max_events
    )
    for offset, rec in enumerate(iter_records(config)):
        verdict = validate(RECORDS_BY_TOPIC[rec.topic], rec.value)
        if not verdict.valid:
            continue
        row = dict(verdict.row)
        row.update(
            kafka_topic=rec.topic,
            kafka_partition=0,
            kafka_offset=offset,
            kafka_timestamp=now,
            ingested_at=now,
        )
        rows[(rec.topic, row["timestamp"].date().isoformat())].append(row)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (table, day), items in rows.items():
        folder = warehouse / table / f"event_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        schema = arrow_table_schema(table)
        pq.write_table(pa.Table.from_pylist(items, schema=schema), folder / f"part-{seed}.parquet")
        counts[table][day] = len(items)
    return counts


@pytest.fixture(scope="module", autouse=True)
def spark():
    """One session for the module (the assets reuse it in process), stopped at its end so that
    later tests in this pytest process build theirs with their own settings."""
    session = build_spark(load_settings({}), "movesmart-test-analytics")
    yield session
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    (active or session).stop()


def test_trip_summary_distance_and_duration(spark):
    from movesmart_dagster.analytics.compute import file_schema

    t0 = datetime(2024, 1, 1, 8, tzinfo=UTC)

    def row(i, dev, lat, lon, speed):
        return (
            f"id-{i}",
            dev,
            t0 + timedelta(minutes=i),
            {"latitude": lat, "longitude": lon},
            speed,
            "N",
            "BMW",
            "X",
            2020,
            "Hybrid",
            "vehicle_data",
            0,
            i,
            t0,
            t0,
        )

    # one degree of latitude is ~111.2 km; v1 goes 0 -> 1 -> 2 degrees north, v2 stays put
    data = [
        row(0, "v1", 0.0, 0.0, 10.0),
        row(1, "v1", 1.0, 0.0, 30.0),
        row(2, "v1", 2.0, 0.0, 50.0),
        row(3, "v2", 5.0, 5.0, 0.0),
        row(3, "v2", 5.0, 5.0, 0.0),
    ]  # a replayed record counts once
    df = spark.createDataFrame(data, file_schema("vehicle_data"))
    out = {r["deviceId"]: r for r in compute.vehicle_trip_summary(df).collect()}
    assert out["v1"]["readings"] == 3 and out["v2"]["readings"] == 1
    assert out["v1"]["distance_km"] == pytest.approx(222.39, abs=0.1)
    assert out["v1"]["duration_min"] == 2.0 and out["v1"]["avg_speed_kmh"] == 30.0
    assert (out["v1"]["start_latitude"], out["v1"]["end_latitude"]) == (0.0, 2.0)
    assert out["v2"]["distance_km"] == 0.0
    cells = compute.hourly_speed_by_area(df).collect()
    assert {(c["cell_latitude"], c["cell_longitude"]) for c in cells} == {
        (0.0, 0.0),
        (1.0, 0.0),
        (2.0, 0.0),
        (5.0, 5.0),
    }


def test_analytics_assets_on_simulated_days(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    counts = land_simulated_days(home / "warehouse", datetime(2024, 3, 1, 22, tzinfo=UTC))
    days = sorted(counts["vehicle_data"])
    assert len(days) >= 2, counts  # the fleet drives across midnight
    job = defs.get_job_def("daily_analytics_job")
    with dg.instance_for_test() as instance:
        for day in days:
            result = job.execute_in_process(instance=instance, partition_key=day)
            assert result.success
        # idempotent: the same partition again replaces its files
        assert job.execute_in_process(instance=instance, partition_key=days[0]).success
        for key in ANALYTICS_KEYS.values():
            mats = instance.fetch_materializations(key, limit=10).records
            assert {m.partition_key for m in mats} == set(days)
            md = mats[0].asset_materialization.metadata
            assert md["dagster/row_count"].value >= 0
            assert md["preview"].value.startswith("**")
            image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", md["chart"].value)
            assert image and base64.b64decode(image.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    trips = pq.read_table(home / "warehouse" / "analytics" / "vehicle_trip_summary" / f"event_date={days[0]}")
    assert trips.num_rows == 3  # the three vehicles
    assert (
        len(
            list(
                (home / "warehouse" / "analytics" / "vehicle_trip_summary" / f"event_date={days[0]}").glob(
                    "*.parquet"
                )
            )
        )
        == 1
    )
    weather = pq.read_table(
        home / "warehouse" / "analytics" / "weather_summary" / f"event_date={days[0]}"
    ).to_pylist()
    assert sum(r["readings"] for r in weather) == counts["weather_data"][days[0]]


def test_analytics_refuse_a_day_with_bad_rows(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    land_simulated_days(home / "warehouse", datetime(2024, 3, 5, 8, tzinfo=UTC), max_events=300)
    day = "2024-03-05"
    folder = home / "warehouse" / "vehicle_data" / f"event_date={day}"
    table = pq.read_table(next(folder.glob("*.parquet")))
    bad = table.set_column(0, "id", pa.array([None] * table.num_rows, pa.string()))
    pq.write_table(bad.cast(arrow_table_schema("vehicle_data")), folder / "part-bad.parquet")
    with dg.instance_for_test() as instance:
        result = defs.get_job_def("daily_analytics_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        assert not result.success
        # the trip summary from vehicle_data is not materialized; the weather one is
        assert not instance.fetch_materializations(ANALYTICS_KEYS["vehicle_trip_summary"], limit=1).records
        assert instance.fetch_materializations(ANALYTICS_KEYS["weather_summary"], limit=1).records
    assert not (home / "warehouse" / "analytics" / "vehicle_trip_summary" / f"event_date={day}").exists()
