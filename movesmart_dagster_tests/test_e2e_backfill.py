"""A CLI backfill of the daily analytics over three past days, on data that went the whole way.

Two past days around a day without data are simulated with `movesmart simulate --start-time`
(2 vehicles on the first, 3 on the last), landed by the real streaming job (`--available-now`,
through a real broker), and then backfilled in one run with `movesmart backfill` (what `make
backfill` runs) — what a person types to fill history, in a shell without DAGSTER_HOME. The test
checks that the run landed in `make dev`'s instance (`$MOVESMART_HOME/dagster`) with each day's
own materialization (rows, path, preview), that the empty day passes quietly (no Java stack trace)
and the terminal got no telemetry banner, deprecation warning or DEBUG event lines, and that the
outputs agree with the tables (DuckDB) and answer `movesmart query` by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from movesmart_dagster.defs.keys import ANALYTICS_KEYS
from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.tables import connect, list_partitions
from movesmart_dagster_tests.conftest import stack_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAYS = ("2024-02-01", "2024-02-02", "2024-02-03")
VEHICLES = {"2024-02-01": 2, "2024-02-02": 0, "2024-02-03": 3}  # the middle day has no data at all


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("backfill-home")
    env = {
        **os.environ,
        **stack_env(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MOVESMART_SPARK_MASTER": "local[2]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "1g",
    }
    (home / "dagster").mkdir()
    broker = KafkaBroker(load_settings(env), heap="512m")
    broker.up()
    try:
        for i, day in enumerate(d for d in DAYS if VEHICLES[d]):
            sim = subprocess.run(
                [str(BIN / "movesmart"), "simulate", "--vehicles", str(VEHICLES[day]), "--seed", str(11 + i)]
                + ["--start-time", f"{day}T09:00:00", "--max-events", str(300 * VEHICLES[day])],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert sim.returncode == 0, sim.stderr[-2000:]
        stream = subprocess.run(
            [sys.executable, "-m", "movesmart_dagster.streaming.job", "--available-now"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert stream.returncode == 0, stream.stdout[-2000:] + stream.stderr[-3000:]
        yield env
    finally:
        broker.down()


def test_cli_backfill_over_three_past_days(landed: dict[str, str]):
    home = Path(landed["MOVESMART_HOME"])
    warehouse = home / "warehouse"
    settings = load_settings(landed)
    landed_days = set(list_partitions(settings, "vehicle_data"))
    for day in DAYS:
        assert (day in landed_days) == bool(VEHICLES[day]), day
    shell = {k: v for k, v in landed.items() if k != "DAGSTER_HOME"}
    proc = subprocess.run(
        [str(BIN / "movesmart"), "backfill", "--start", DAYS[0], "--end", DAYS[-1]],
        env=shell,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    terminal = proc.stdout + proc.stderr
    assert "FileNotFoundException" not in terminal and "WARN FileStreamSink" not in terminal
    # Spark's start-up notices (spark-log4j2.properties)
    assert "Using Spark's default log4j profile" not in terminal and "NativeCodeLoader" not in terminal
    assert "resolves to a loopback address" not in terminal and "Using incubator modules" not in terminal
    assert "SupersessionWarning" not in terminal and "dg launch" not in terminal
    assert "Telemetry" not in terminal and "telemetry" not in terminal
    assert " - DEBUG - " not in terminal
    assert " SUCCESS: " in proc.stdout

    con = duckdb.connect()
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))  # the instance `make dev` serves
    try:
        (run,) = instance.get_run_records()
        assert run.dagster_run.job_name == "daily_analytics_job" and run.dagster_run.is_success
        for name, key in ANALYTICS_KEYS.items():
            records = instance.fetch_materializations(key, limit=20).records
            assert {r.partition_key for r in records} == set(DAYS), name
            assert len({r.run_id for r in records}) == 1, name  # the range ran as a single run
            by_day = {r.partition_key: r.asset_materialization.metadata for r in records}
            for day in DAYS:
                folder = warehouse / "analytics" / name / f"event_date={day}"
                assert any(folder.glob("*.parquet")), (name, day)
                md = by_day[day]
                assert md["path"].value == f"file://{folder}", (name, day)
                assert (
                    md["dagster/row_count"].value
                    == con.execute(f"select count(*) from read_parquet('{folder}/*.parquet')").fetchone()[0]
                ), (name, day)
                assert md["preview"].value.startswith(f"**{day}**"), (name, day)
            if name == "vehicle_trip_summary":  # one row per vehicle of that day, shown in its preview
                for day, vehicles in VEHICLES.items():
                    assert by_day[day]["dagster/row_count"].value == vehicles, day
                    preview = by_day[day]["preview"].value
                    assert ("no rows for this day" in preview) == (vehicles == 0), day
                    assert preview.count("| vehicle-") == vehicles, day
    finally:
        instance.dispose()

    con = connect(settings)  # the tables through the catalog, as `movesmart query` reads them
    for day in (d for d in DAYS if VEHICLES[d]):
        tables = con.execute(
            f"select count(*), count(distinct deviceId) from weather_data where event_date = '{day}'"
        ).fetchone()
        summary = con.execute(
            "select sum(readings) from read_parquet("
            f"'{warehouse}/analytics/weather_summary/event_date={day}/*.parquet')"
        ).fetchone()
        assert summary[0] == tables[0] > 0, day
        trips = con.execute(
            f"select count(*) from read_parquet('{warehouse}/analytics/vehicle_trip_summary/event_date={day}/*.parquet')"
        ).fetchone()
        assert trips[0] == VEHICLES[day], day

    query = subprocess.run(
        [str(BIN / "movesmart"), "query", "--format", "csv"]
        + [
            "select cast(event_date as varchar), count(*) from dev_smartcity.vehicle_trip_summary group by 1 order by 1"
        ],
        env=landed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1:] == [f"{DAYS[0]},2", f"{DAYS[2]},3"]
