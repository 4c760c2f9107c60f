"""S3 mode: the same job writes the same tables to s3a:// through the local S3 endpoint.

The endpoint is `movesmart stack up --s3`'s (moto's server on loopback). The credentials
below are the dummy values that endpoint accepts; they exist only inside this test.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from movesmart_dagster.schemas import ALL_TABLES, TABLES
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint
from movesmart_dagster.streaming.progress import iter_all
from movesmart_dagster.tables import connect, list_partitions
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_streaming_support import check_exact, run_cli, simulate

BUCKET = "movesmart-s3-test"
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": "us-east-1",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
}


@pytest.fixture(scope="module")
def s3_drained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Settings, dict]]:
    port = free_port()
    env = stack_env(
        tmp_path_factory.mktemp("s3-home"),
        MOVESMART_WAREHOUSE=f"s3a://{BUCKET}/warehouse",
        MOVESMART_S3_LOCAL_PORT=str(port),
        MOVESMART_S3_ENDPOINT=f"http://127.0.0.1:{port}",
        **DUMMY_AWS,
    )
    settings = load_settings(env)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in DUMMY_AWS.items():
            mp.setenv(k, v)
        s3 = LocalS3Endpoint(settings)
        broker = KafkaBroker(settings, heap="512m")
        s3.up()
        broker.up()
        try:
            summary = simulate(
                env, "--vehicles", "3", "--seed", "5", "--max-events", "3000", "--bad-ratio", "0.05"
            )
            run = run_cli(env, "stream", "--available-now", "--max-offsets-per-trigger", "1500")
            assert run.returncode == 0, run.stderr[-4000:]
            yield env, settings, summary
        finally:
            broker.down()
            s3.down()


def _keys(settings: Settings) -> list[str]:
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name="us-east-1")
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="warehouse/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_s3_tables_are_exact_and_clean(s3_drained: tuple[dict[str, str], Settings, dict]) -> None:
    env, settings, summary = s3_drained
    counts = check_exact(settings)
    assert sum(g + b for g, b in counts.values()) == summary["delivered"] == 3000
    assert sum(b for _, b in counts.values()) == summary["malformed"]
    keys = _keys(settings)
    # (S3A leaves zero-byte "folder/" markers; readers ignore them)
    data = [k for k in keys if k.split("/")[1] in ALL_TABLES and "/_" not in k and not k.endswith("/")]
    assert data and all(k.split("/")[2].startswith("event_date=") and k.endswith(".parquet") for k in data)
    assert not [k for k in keys if "/_staging/" in k and not k.endswith("/")]
    assert any(
        k.startswith("warehouse/_checkpoints/stream/") for k in keys
    )  # checkpoint beside the warehouse
    assert list_partitions(settings, "gps_data") == ["2024-06-03"]
    assert len(list(iter_all(settings.progress_log))) >= 2


def test_s3_views_in_dev_smartcity(s3_drained: tuple[dict[str, str], Settings, dict]) -> None:
    env, settings, _ = s3_drained
    con = connect(settings)
    try:
        for table in TABLES:
            main = con.execute(f"select count(*) from {table}").fetchone()[0]
            assert con.execute(f"select count(*) from dev_smartcity.{table}").fetchone()[0] == main
        loc = con.execute("select location from dev_smartcity.weather_data limit 1").fetchone()[0]
        assert set(loc) == {"latitude", "longitude"}
    finally:
        con.close()
    proc = run_cli(env, "query", "select count(*) as n from dev_smartcity.quarantine", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["n", str(sum(b for _, b in check_exact(settings).values()))]
