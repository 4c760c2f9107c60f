"""The alert sensor against a real instance, real checks over Parquet files, and a real HTTP receiver.

The webhook is a `http.server` on a free loopback port that records each POST; the asset
checks run for real (DuckDB over files written here with the tables' Arrow schema); a run
fails for real in the instance; freshness states are written the way the freshness daemon
writes them. The test walks through state changes and asserts exactly one alert per change.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.test_utils import create_run_for_test
from dagster_aws.s3 import S3Resource

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.alerts.sensor import build_alert_sensor, expected_partition, run_failure_alerts
from movesmart_dagster.defs.checks.checks import day_checks_job
from movesmart_dagster.defs.keys import DEV_SMARTCITY_KEY, TABLE_KEYS
from movesmart_dagster.defs.resources import AlertResource, WarehouseResource
from movesmart_dagster.schemas import PARTITION_COLUMN, arrow_table_schema
from movesmart_dagster.settings import load_settings
from movesmart_dagster.tables.catalog import ensure_tables, load_table


class Receiver:
    def __init__(self) -> None:
        self.posts: list[dict] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/movesmart"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _write_vehicles(home: Path, null_ids: int, day: str = "2024-01-01", replace: bool = False) -> None:
    """Ten vehicle_data rows of `day` committed to the table (`replace`: instead of all it held);
    `null_ids` of them lack an id."""
    schema = arrow_table_schema("vehicle_data")
    now = datetime.fromisoformat(day).replace(hour=8, tzinfo=UTC)
    n = 10
    rows = {
        "id": [None if i < null_ids else f"id-{i}" for i in range(n)],
        "deviceId": [f"v-{i % 2}" for i in range(n)],
        "timestamp": [now] * n,
        "location": [{"latitude": 51.5, "longitude": -0.1}] * n,
        "speed": [50.0] * n,
        "direction": ["North"] * n,
        "make": ["BMW"] * n,
        "model": ["C500"] * n,
        "year": [2020] * n,
        "fuelType": ["Hybrid"] * n,
        "kafka_topic": ["vehicle_data"] * n,
        "kafka_partition": [0] * n,
        "kafka_offset": list(range(n)),
        "kafka_timestamp": [now] * n,
        "ingested_at": [now] * n,
    }
    rows[PARTITION_COLUMN] = [date.fromisoformat(day)] * n
    schema = schema.append(pa.field(PARTITION_COLUMN, pa.date32()))
    # appended through the Iceberg catalog, as the streaming job commits a batch
    settings = load_settings({"MOVESMART_HOME": str(home)})
    ensure_tables(settings)
    table = load_table(settings, "vehicle_data")
    (table.overwrite if replace else table.append)(pa.table(rows, schema=schema))


def _resources(webhook_url: str | None = None) -> dict:
    """The sensor's resources; the warehouse is MOVESMART_HOME's local folder."""
    return {"alerts": AlertResource(webhook_url=webhook_url), "warehouse": WarehouseResource(s3=S3Resource())}


def _fail_a_run(instance: dg.DagsterInstance, resources: dict, tags: dict | None = None) -> str:
    """A streaming run fails in the instance; `run_failure_alerts` gets its failure event."""
    run = create_run_for_test(
        instance, job_name="streaming_job", status=dg.DagsterRunStatus.STARTED, tags=tags or {}
    )
    instance.report_run_failed(run)
    (failure,) = [
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    ]
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        resources={"alerts": resources["alerts"]},  # the only resource it takes
    ).for_run_failure()
    run_failure_alerts(context)
    return run.run_id


def _run_checks(instance: dg.DagsterInstance, day: str = "2024-01-01") -> bool:
    """Run the real per-day quality checks of every table for `day`, as the automation sensor's run
    does; False when one failed."""
    result = day_checks_job(defs).execute_in_process(
        partition_key=day, instance=instance, raise_on_error=False
    )
    return all(e.passed for e in result.get_asset_check_evaluations())


def test_one_alert_per_state_change(tmp_path, monkeypatch, receiver):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    sensor = build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY])
    resources = _resources(receiver.url)

    with dg.instance_for_test() as instance:
        cursor: str | None = None

        def tick() -> list[str]:
            nonlocal cursor
            before = len(receiver.posts)
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=resources, definitions=defs
            ) as ctx:
                data = sensor.evaluate_tick(ctx)
            cursor = data.cursor
            return [p["text"] for p in receiver.posts[before:]]

        assert tick() == []  # nothing has happened yet

        # an asset check fails: one alert, then silence while it stays failed
        _write_vehicles(home, null_ids=2)
        assert not _run_checks(instance)
        texts = tick()
        assert len(texts) == 1, texts
        assert "check failed" in texts[0] and "smartcity/vehicle_data:no_null_ids[2024-01-01]" in texts[0]
        assert "2 null ids in 10 rows" in texts[0]
        assert not _run_checks(instance)
        assert tick() == []

        # the data is fixed: one recovery alert
        _write_vehicles(home, null_ids=0, replace=True)
        assert _run_checks(instance)
        texts = tick()
        assert len(texts) == 1 and "check recovered" in texts[0], texts

        # freshness fails, stays failed, recovers: two alerts
        key = TABLE_KEYS["gps_data"]

        def freshness(prev: FreshnessState, new: FreshnessState) -> None:
            instance.report_runless_asset_event(
                FreshnessStateChange(
                    key=key,
                    previous_state=prev,
                    new_state=new,
                    state_change_timestamp=datetime.now(UTC).timestamp(),
                )
            )

        freshness(FreshnessState.UNKNOWN, FreshnessState.FAIL)
        texts = tick()
        assert len(texts) == 1 and "freshness failed" in texts[0] and "smartcity/gps_data" in texts[0]
        assert tick() == []
        freshness(FreshnessState.FAIL, FreshnessState.PASS)
        texts = tick()
        assert len(texts) == 1 and "freshness recovered" in texts[0]

        # a run fails: one alert, from Dagster's run-failure sensor (never from the state sensor)
        before = len(receiver.posts)
        run_id = _fail_a_run(instance, resources)
        texts = [p["text"] for p in receiver.posts[before:]]
        assert len(texts) == 1 and f"run {run_id[:8]} of streaming_job" in texts[0]
        assert tick() == []
        # a quality-check run's failure is the checks' own alert: not a second one
        _fail_a_run(instance, resources, tags={"movesmart/alert_on_failure": "false"})
        assert len(receiver.posts) == before + 1

    # every post is Slack-compatible: text plus blocks with a header and a section
    assert len(receiver.posts) == 5
    for post in receiver.posts:
        assert set(post) == {"text", "blocks"}
        assert [b["type"] for b in post["blocks"]] == ["header", "section", "context"]


def test_without_webhook_alerts_go_to_the_log(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    sensor = build_alert_sensor([TABLE_KEYS["gps_data"]])
    with dg.instance_for_test() as instance:
        run_id = _fail_a_run(instance, _resources())
        freshness = FreshnessStateChange(
            key=TABLE_KEYS["gps_data"],
            previous_state=FreshnessState.UNKNOWN,
            new_state=FreshnessState.FAIL,
            state_change_timestamp=datetime.now(UTC).timestamp(),
        )
        instance.report_runless_asset_event(freshness)
        with dg.build_sensor_context(instance=instance, resources=_resources(), definitions=defs) as ctx:
            data = sensor.evaluate_tick(ctx)
        assert data.skip_message == "1 alert(s) sent (0 to the webhook)"
    logged = capfd.readouterr().err
    assert f"ALERT :rotating_light: Move Smart run failed: run {run_id[:8]} of streaming_job" in logged
    assert "ALERT :rotating_light: Move Smart freshness failed: smartcity/gps_data" in logged


def test_a_tick_without_news_prints_nothing_in_the_terminal(tmp_path, monkeypatch, capfd):
    """Dagster echoes a sensor's INFO lines on the console: "no state change" stays in the tick."""
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    sensor = build_alert_sensor([TABLE_KEYS["gps_data"]])
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=_resources(), definitions=defs) as ctx:
            data = sensor.evaluate_tick(ctx)
        assert data.skip_message == "no state change"  # what the UI's tick list shows
    assert "no state change" not in capfd.readouterr().err


def test_analytics_partitions_without_source_data_do_not_alert(tmp_path, monkeypatch, receiver):
    """A fresh install: the daily analytics' partition freshness checks fail for a day nothing
    was ever sent for. That is an empty day, not a late one: no alert — until the source table
    gets rows for that day, and then one alert per analytics asset that reads it."""
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    graph = defs.get_repository_def().asset_graph
    freshness = sorted(
        (
            k
            for k in graph.asset_check_keys
            if k.name == "freshness_check" and k.asset_key.path[0] == "analytics"
        ),
        key=str,
    )
    assert len(freshness) == 4
    only_freshness = dg.define_asset_job(
        "analytics_freshness_only", selection=dg.AssetSelection.checks(*freshness)
    )
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[only_freshness])).resolve_job_def(
        only_freshness.name
    )
    sensor = build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY])

    with dg.instance_for_test() as instance:
        cursor: str | None = None

        def tick() -> list[str]:
            nonlocal cursor
            before = len(receiver.posts)
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=_resources(receiver.url), definitions=defs
            ) as ctx:
                cursor = sensor.evaluate_tick(ctx).cursor
            return [p["text"] for p in receiver.posts[before:]]

        # the real checks, as the analytics freshness sensor runs them: all four fail
        evaluations = job.execute_in_process(instance=instance).get_asset_check_evaluations()
        assert [e.passed for e in evaluations] == [False] * 4
        (day,) = {expected_partition(e) for e in evaluations}
        assert day is not None and "never been observed/materialized" in evaluations[0].description
        assert tick() == []
        assert tick() == []

        # records of that day land in vehicle_data: the two analytics that read it are now late
        _write_vehicles(home, null_ids=0, day=day)
        job.execute_in_process(instance=instance)
        texts = tick()
        assert sorted(t.split("check failed: ", 1)[1].split(" — ")[0] for t in texts) == [
            "analytics/hourly_speed_by_area:freshness_check",
            "analytics/vehicle_trip_summary:freshness_check",
        ], texts
        assert all("check failed" in t and f"expect partition {day}" in t for t in texts)
        assert tick() == []


def test_a_table_freshness_check_does_not_alert_twice(tmp_path, monkeypatch, receiver):
    """A stale table fails its freshness check (shown red in the catalog) — its freshness policy
    alerts already, so the failed check itself sends nothing."""
    import time

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    key = TABLE_KEYS["gps_data"]
    check = dg.AssetCheckKey(key, "freshness_check")
    only = dg.define_asset_job("gps_freshness", selection=dg.AssetSelection.checks(check))
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[only])).resolve_job_def(only.name)
    sensor = build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY])
    with dg.instance_for_test() as instance:
        stale = time.time() - 3600
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                key, metadata={"dagster/last_updated_timestamp": dg.MetadataValue.timestamp(stale)}
            )
        )
        (evaluation,) = job.execute_in_process(instance=instance).get_asset_check_evaluations()
        assert not evaluation.passed
        with dg.build_sensor_context(
            instance=instance, resources=_resources(receiver.url), definitions=defs
        ) as ctx:
            data = sensor.evaluate_tick(ctx)
    assert data.skip_message == "no state change" and receiver.posts == []


@pytest.mark.parametrize("at", ["00:00", "02:59", "03:00", "12:00", "23:59"])
def test_make_dev_seeds_a_day_the_analytics_freshness_checks_do_not_expect(tmp_path, monkeypatch, at):
    """`make dev` seeds a past day whose analytics the automation computes a minute later: were it
    the day the freshness checks expect (the day before yesterday until 03:00 UTC), the first
    minutes would alert "late". The real checks, run at each hour, expect the day our rule names,
    and the seeded day is the one before."""
    from datetime import datetime, timedelta

    from dagster._core.test_utils import freeze_time

    from movesmart_dagster.defs.partitions import expected_analytics_day
    from movesmart_dagster.dev import seed_day

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    graph = defs.get_repository_def().asset_graph
    freshness = [
        k
        for k in graph.asset_check_keys
        if k.name == "freshness_check" and k.asset_key.path[0] == "analytics"
    ]
    only_freshness = dg.define_asset_job(
        "analytics_freshness_at", selection=dg.AssetSelection.checks(*freshness)
    )
    job = dg.Definitions.merge(defs, dg.Definitions(jobs=[only_freshness])).resolve_job_def(
        only_freshness.name
    )
    now = datetime.fromisoformat(f"2026-03-10T{at}:00+00:00")
    with dg.instance_for_test() as instance, freeze_time(now):
        evaluations = job.execute_in_process(instance=instance).get_asset_check_evaluations()
    (expected,) = {expected_partition(e) for e in evaluations}
    yesterday = now.date() - timedelta(days=1)
    assert expected == expected_analytics_day(now).isoformat()
    assert expected == (yesterday if at >= "03:00" else yesterday - timedelta(days=1)).isoformat()
    assert seed_day(now) == expected_analytics_day(now) - timedelta(days=1)
