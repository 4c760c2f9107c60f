"""Daily analytics: the pure Spark functions on known inputs, and the assets materialized on
days produced by the simulator.

`land_simulated_days` commits what the streaming job commits (the contract applied to the
simulator's records, appended with pyiceberg to the Iceberg tables of the same catalog), so
these tests need no broker; the end-to-end path through Kafka and the real streaming job is
covered by the CLI backfill test in test_e2e_backfill.py. The range backfill here runs the
same `dagster asset materialize --partition-range` command in a child process, so its whole
output (the JVM's included) can be read.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import matplotlib.pyplot as plt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movesmart_dagster.analytics import compute, plots
from movesmart_dagster.contract import validate
from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.keys import ANALYTICS_KEYS
from movesmart_dagster.schemas import PARTITION_COLUMN, RECORDS_BY_TOPIC, arrow_table_schema
from movesmart_dagster.settings import load_settings
from movesmart_dagster.simulator.fleet import SimConfig, iter_records
from movesmart_dagster.spark_session import build_spark
from movesmart_dagster.tables.catalog import load_table


def land_simulated_days(
    home: Path, start: datetime, vehicles: int = 3, seed: int = 7, max_events: int = 1500
) -> dict:
    """Simulator records -> contract -> one Iceberg append per table (catalog under `home`, the
    rest of the settings from the environment); returns rows per table and event_date."""
    import os

    from movesmart_dagster.tables.catalog import ensure_tables, load_catalog, load_table

    settings = load_settings({**os.environ, "MOVESMART_HOME": str(home)})
    rows: dict[str, list[dict]] = defaultdict(list)
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
            event_date=row["timestamp"].date(),
        )
        rows[rec.topic].append(row)
    catalog = load_catalog(settings)
    ensure_tables(settings, catalog)
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for table, items in rows.items():
        schema = arrow_table_schema(table).append(pa.field(PARTITION_COLUMN, pa.date32()))
        load_table(settings, table, catalog).append(pa.Table.from_pylist(items, schema=schema))
        for item in items:
            day = item["event_date"].isoformat()
            counts[table][day] = counts[table].get(day, 0) + 1
    return counts


REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


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
    counts = land_simulated_days(home, datetime(2024, 3, 1, 22, tzinfo=UTC))
    days = sorted(counts["vehicle_data"])
    assert len(days) >= 2, counts  # the fleet drives across midnight
    job = defs.get_job_def("daily_analytics_job")
    with dg.instance_for_test() as instance:
        for day in days:
            result = job.execute_in_process(instance=instance, partition_key=day)
            assert result.success
        # idempotent: the same partition again replaces its files
        assert job.execute_in_process(instance=instance, partition_key=days[0]).success
        for name, key in ANALYTICS_KEYS.items():
            mats = instance.fetch_materializations(key, limit=10).records
            assert {m.partition_key for m in mats} == set(days)
            md = mats[0].asset_materialization.metadata  # the latest: days[0], run again
            assert mats[0].partition_key == days[0]
            written = pq.read_table(home / "warehouse" / "analytics" / name / f"event_date={days[0]}")
            assert md["dagster/row_count"].value == written.num_rows > 0, name
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
    land_simulated_days(home, datetime(2024, 3, 5, 8, tzinfo=UTC), max_events=300)
    day = "2024-03-05"
    vehicle = load_table(load_settings(), "vehicle_data")
    committed = vehicle.scan().to_arrow()
    # a later batch of rows without ids (what a broken producer and a contract bug would land)
    vehicle.append(committed.set_column(0, "id", pa.array([None] * committed.num_rows, pa.string())))
    with dg.instance_for_test() as instance:
        result = defs.get_job_def("daily_analytics_job").execute_in_process(
            instance=instance, partition_key=day, raise_on_error=False
        )
        assert not result.success
        # the trip summary from vehicle_data is not materialized; the weather one is
        assert not instance.fetch_materializations(ANALYTICS_KEYS["vehicle_trip_summary"], limit=1).records
        assert instance.fetch_materializations(ANALYTICS_KEYS["weather_summary"], limit=1).records
    assert not (home / "warehouse" / "analytics" / "vehicle_trip_summary" / f"event_date={day}").exists()


def test_output_columns_are_what_spark_computes(spark):
    from movesmart_dagster.analytics.compute import file_schema

    for name, (table, fn) in compute.ANALYTICS.items():
        result = fn(spark.createDataFrame([], file_schema(table)))
        assert [(f.name, f.dataType.simpleString()) for f in result.schema.fields] == compute.OUTPUT_COLUMNS[
            name
        ], name


def test_hourly_charts_span_the_day_of_their_hours(spark):
    """One hour of data: the x axis is the day's 24 hours, not the four years matplotlib's
    date locator makes of a single point."""
    from movesmart_dagster.analytics.compute import file_schema

    t0 = datetime(2024, 2, 1, 9, 15, tzinfo=UTC)
    row = ("id-1", "v1", t0, {"latitude": 52.0, "longitude": -1.0}, 42.0, "N", "BMW", "X", 2020, "Hybrid")
    vehicle = spark.createDataFrame([(*row, "vehicle_data", 0, 1, t0, t0)], file_schema("vehicle_data"))
    pdf = compute.hourly_speed_by_area(vehicle).toPandas()
    fig = plots.figure_for("hourly_speed_by_area", pdf, "2024-02-01")
    try:
        (ax,) = fig.axes
        assert ax.get_xlim() == (0.0, 24.0)
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == [9.0] and list(line.get_ydata()) == [42.0]
        assert ax.get_xlabel() == "2024-02-01 (UTC)"
    finally:
        plt.close(fig)


# a range with a gap: day 1 has 2 vehicles, day 2 nothing at all, day 3 has 4 vehicles
RANGE_DAYS = ("2024-04-01", "2024-04-02", "2024-04-03")
RANGE_VEHICLES = {"2024-04-01": 2, "2024-04-02": 0, "2024-04-03": 4}


@pytest.fixture(scope="module")
def range_backfill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Three days backfilled as one run by the CLI a person types, in a child process."""
    home = tmp_path_factory.mktemp("range-home")
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for seed, day in ((7, RANGE_DAYS[0]), (8, RANGE_DAYS[2])):
        vehicles = RANGE_VEHICLES[day]
        start = datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)
        landed = land_simulated_days(home, start, vehicles, seed, max_events=300 * vehicles)
        for table, by_day in landed.items():
            assert set(by_day) == {day}, (table, by_day)  # 75 one-minute ticks from 09:00
            counts[table].update(by_day)
    env = {
        **os.environ,
        "MOVESMART_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MOVESMART_SPARK_MASTER": "local[2]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "1g",
    }
    (home / "dagster").mkdir()
    select = ",".join(k.to_user_string() for k in ANALYTICS_KEYS.values())
    proc = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "movesmart_dagster.definitions"]
        + ["--select", select, "--partition-range", f"{RANGE_DAYS[0]}...{RANGE_DAYS[-1]}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        materializations = {
            name: {r.partition_key: r for r in instance.fetch_materializations(key, limit=20).records}
            for name, key in ANALYTICS_KEYS.items()
        }
        run_ids = {r.run_id for by_day in materializations.values() for r in by_day.values()}
    finally:
        instance.dispose()
    yield {
        "home": home,
        "env": env,
        "counts": counts,
        "output": proc.stdout + proc.stderr,
        "materializations": materializations,
        "run_ids": run_ids,
    }


def test_range_backfill_gives_each_day_its_own_materialization(range_backfill):
    assert len(range_backfill["run_ids"]) == 1  # one run over the range
    warehouse = range_backfill["home"] / "warehouse"
    for name, by_day in range_backfill["materializations"].items():
        assert set(by_day) == set(RANGE_DAYS), name
        charts = set()
        for day in RANGE_DAYS:
            md = by_day[day].asset_materialization.metadata
            folder = warehouse / "analytics" / name / f"event_date={day}"
            assert md["path"].value == f"file://{folder}", (name, day)
            written = pq.read_table(folder).num_rows
            assert md["dagster/row_count"].value == written, (name, day)
            preview = md["preview"].value
            assert preview.startswith(f"**{day}**\n\n"), (name, day)
            assert ("no rows for this day" in preview) == (written == 0), (name, day)
            charts.add(md["chart"].value)
        assert len(charts) == 3, name  # each day its own chart
    trips = range_backfill["materializations"]["vehicle_trip_summary"]
    for day, vehicles in RANGE_VEHICLES.items():
        md = trips[day].asset_materialization.metadata
        assert md["dagster/row_count"].value == vehicles, day
        shown = set(re.findall(r"vehicle-\d{5}", md["preview"].value))
        assert shown == {f"vehicle-{i:05d}" for i in range(1, vehicles + 1)}, day
    weather = range_backfill["materializations"]["weather_summary"]
    for day in (RANGE_DAYS[0], RANGE_DAYS[2]):
        rows = pq.read_table(warehouse / "analytics" / "weather_summary" / f"event_date={day}").to_pylist()
        assert sum(r["readings"] for r in rows) == range_backfill["counts"]["weather_data"][day]
        assert weather[day].asset_materialization.metadata["dagster/row_count"].value == 2  # 09:00, 10:00


def test_a_day_without_data_is_an_empty_result_quietly(range_backfill):
    """2024-04-02 has no folder in any table: no Java stack trace, no WARN, an empty day."""
    output = range_backfill["output"]
    assert "FileNotFoundException" not in output
    assert "WARN FileStreamSink" not in output
    assert "does not exist" not in output
    gap = RANGE_DAYS[1]
    for name, by_day in range_backfill["materializations"].items():
        md = by_day[gap].asset_materialization.metadata
        assert md["dagster/row_count"].value == 0, name
        assert "no rows for this day" in md["preview"].value, name


def test_analytics_are_queryable_by_name(range_backfill):
    def query(sql: str) -> list[dict]:
        proc = subprocess.run(
            [str(BIN / "movesmart"), "query", sql, "--format", "json"],
            env=range_backfill["env"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    trips = query(
        "select cast(event_date as varchar) as day, count(*) as n, sum(readings) as readings "
        "from dev_smartcity.vehicle_trip_summary group by 1 order by 1"
    )
    vehicle = range_backfill["counts"]["vehicle_data"]
    assert trips == [
        {"day": RANGE_DAYS[0], "n": 2, "readings": vehicle[RANGE_DAYS[0]]},
        {"day": RANGE_DAYS[2], "n": 4, "readings": vehicle[RANGE_DAYS[2]]},
    ]
    for name in compute.ANALYTICS:
        for schema in ("", "dev_smartcity."):
            rows = query(f"select count(*) as n from {schema}{name}")
            expected = sum(
                range_backfill["materializations"][name][d]
                .asset_materialization.metadata["dagster/row_count"]
                .value
                for d in RANGE_DAYS
            )
            assert rows == [{"n": expected}], (schema, name)
    hours = query("select hour from weather_summary where event_date = '2024-04-01' order by hour")
    assert hours == [{"hour": "2024-04-01T09:00:00+00:00"}, {"hour": "2024-04-01T10:00:00+00:00"}]
