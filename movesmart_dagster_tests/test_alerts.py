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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.test_utils import create_run_for_test

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.alerts.sensor import build_alert_sensor
from movesmart_dagster.defs.keys import DEV_SMARTCITY_KEY, TABLE_KEYS
from movesmart_dagster.defs.resources import AlertResource
from movesmart_dagster.schemas import arrow_table_schema


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


def _write_vehicles(home: Path, null_ids: int) -> None:
    """A vehicle_data partition written with the table's Arrow schema; `null_ids` rows lack an id."""
    schema = arrow_table_schema("vehicle_data")
    now = datetime(2024, 1, 1, 8, tzinfo=UTC)
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
    folder = home / "warehouse" / "vehicle_data" / "event_date=2024-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), folder / "part-0.parquet")


def _run_checks(instance: dg.DagsterInstance) -> bool:
    """Run the real quality-check job; False when a blocking check failed (and so the run)."""
    result = defs.get_job_def("table_quality_job").execute_in_process(instance=instance, raise_on_error=False)
    return result.success


def test_one_alert_per_state_change(tmp_path, monkeypatch, receiver):
    home = tmp_path / "home"
    monkeypatch.setenv("MOVESMART_HOME", str(home))
    sensor = build_alert_sensor([*TABLE_KEYS.values(), DEV_SMARTCITY_KEY])
    resources = {"alerts": AlertResource(webhook_url=receiver.url)}

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
        assert "check failed" in texts[0] and "smartcity/vehicle_data:no_null_ids" in texts[0]
        assert "2 null ids in 10 rows" in texts[0]
        assert not _run_checks(instance)
        assert tick() == []

        # the data is fixed: one recovery alert
        _write_vehicles(home, null_ids=0)
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

        # a run fails: one alert, never repeated
        run = create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(run)
        texts = tick()
        assert len(texts) == 1 and f"run {run.run_id[:8]} of streaming_job" in texts[0]
        assert tick() == []

    # every post is Slack-compatible: text plus blocks with a header and a section
    assert len(receiver.posts) == 5
    for post in receiver.posts:
        assert set(post) == {"text", "blocks"}
        assert [b["type"] for b in post["blocks"]] == ["header", "section", "context"]


def test_without_webhook_alerts_go_to_the_log(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    sensor = build_alert_sensor([TABLE_KEYS["gps_data"]])
    with dg.instance_for_test() as instance:
        run = create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.STARTED)
        instance.report_run_failed(run)
        with dg.build_sensor_context(
            instance=instance, resources={"alerts": AlertResource()}, definitions=defs
        ) as ctx:
            data = sensor.evaluate_tick(ctx)
        assert data.skip_message == "1 alert(s) sent (0 to the webhook)"
    logged = capfd.readouterr().err
    assert f"ALERT :rotating_light: Move Smart run failed: run {run.run_id[:8]} of streaming_job" in logged
