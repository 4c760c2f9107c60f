"""A CLI backfill of the daily analytics over three past days, on data that went the whole way.

Three past days are simulated with `movesmart simulate --start-time`, landed by the real
streaming job (`--available-now`, through a real broker), and then backfilled in one run with
`dagster asset materialize --partition-range` — what a person types to fill history. The
test checks the instance's materializations per day and that the outputs agree with the
tables (read back with DuckDB).
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
from movesmart_dagster_tests.conftest import stack_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAYS = ("2024-02-01", "2024-02-02", "2024-02-03")


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
        for i, day in enumerate(DAYS):
            sim = subprocess.run(
                [str(BIN / "movesmart"), "simulate", "--vehicles", "2", "--seed", str(11 + i)]
                + ["--start-time", f"{day}T09:00:00", "--max-events", "600"],
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
    for day in DAYS:
        assert any((warehouse / "vehicle_data" / f"event_date={day}").glob("*.parquet")), day
    select = ",".join(k.to_user_string() for k in ANALYTICS_KEYS.values())
    proc = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "movesmart_dagster.definitions"]
        + ["--select", select, "--partition-range", f"{DAYS[0]}...{DAYS[-1]}"],
        env=landed,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    instance = dg.DagsterInstance.from_config(landed["DAGSTER_HOME"])
    try:
        for name, key in ANALYTICS_KEYS.items():
            records = instance.fetch_materializations(key, limit=20).records
            assert {r.partition_key for r in records} == set(DAYS), name
            assert len({r.run_id for r in records}) == 1, name  # the range ran as a single run
            for day in DAYS:
                assert any((warehouse / "analytics" / name / f"event_date={day}").glob("*.parquet")), (
                    name,
                    day,
                )
    finally:
        instance.dispose()

    con = duckdb.connect()
    for day in DAYS:
        tables = con.execute(
            f"select count(*), count(distinct deviceId) from read_parquet('{warehouse}/weather_data/event_date={day}/*.parquet')"
        ).fetchone()
        summary = con.execute(
            "select sum(readings) from read_parquet("
            f"'{warehouse}/analytics/weather_summary/event_date={day}/*.parquet')"
        ).fetchone()
        assert summary[0] == tables[0] > 0, day
        trips = con.execute(
            f"select count(*) from read_parquet('{warehouse}/analytics/vehicle_trip_summary/event_date={day}/*.parquet')"
        ).fetchone()
        assert trips[0] == 2, day  # the two vehicles of that day
