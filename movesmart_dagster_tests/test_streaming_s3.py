"""S3 mode: the same job writes the same Iceberg tables to S3 through the local S3 endpoint,
with the tables in the local SQLite catalog and, in AWS mode, in Glue (`MOVESMART_CATALOG=glue`).

The endpoint is `movesmart stack up --s3`'s (moto's server on loopback: S3 and Glue). The
credentials below are the dummy values that endpoint accepts; they exist only inside this test.
The endpoint records every request it serves (moto's recorder): the IAM documents in deploy/iam/
must grant each Glue and S3 action the run needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from movesmart_dagster.schemas import ALL_TABLES, TABLES
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint
from movesmart_dagster.streaming.progress import iter_all
from movesmart_dagster.tables import connect, list_files, list_partitions
from movesmart_dagster.tables.catalog import load_table
from movesmart_dagster_tests.conftest import DUMMY_AWS, s3_stack_env
from movesmart_dagster_tests.test_deploy_iam import (
    actions_of_recorded_requests,
    granted_actions,
    recorded_requests,
)
from movesmart_dagster_tests.test_streaming_support import (
    batches_committed_twice,
    check_exact,
    check_readers_agree,
    run_cli,
    simulate,
)

BUCKET = "movesmart-s3-test"


@pytest.fixture(scope="module", params=["local", "glue"])
def s3_drained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], Settings, dict]]:
    env = s3_stack_env(tmp_path_factory.mktemp("s3-home"), request.param, f"s3a://{BUCKET}/warehouse")
    settings = load_settings(env)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in DUMMY_AWS.items():
            mp.setenv(k, v)
        # the endpoint (a child process) records every request; removed below: it holds signatures
        mp.setenv("MOTO_ENABLE_RECORDING", "True")
        mp.setenv("MOTO_RECORDER_FILEPATH", str(_recording(settings)))
        s3 = LocalS3Endpoint(settings)
        broker = KafkaBroker(settings, heap="512m")
        s3.up()
        # the endpoint's own setup (list and create the bucket) is not the platform's
        _recording(settings).unlink()
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
            _recording(settings).unlink(missing_ok=True)


def _recording(settings: Settings) -> Path:
    return settings.home_dir / "moto-requests.jsonl"


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
    assert not batches_committed_twice(settings)
    check_readers_agree(env, settings)  # DuckDB over the scan plan, pyiceberg, Spark: the same rows
    keys = _keys(settings)
    # (S3A leaves zero-byte "folder/" markers; readers ignore them)
    objects = [k for k in keys if not k.endswith("/") and not k.startswith("warehouse/_checkpoints/")]
    assert objects and all(
        k.split("/")[1] == "smartcity"
        and k.split("/")[2] in ALL_TABLES
        and k.split("/")[3] in ("data", "metadata")
        for k in objects
    ), objects[:5]
    for table in ALL_TABLES:  # every file a snapshot lists is there, under s3:// (never s3a://)
        for uri in list_files(settings, table):
            assert uri.startswith(f"s3://{BUCKET}/warehouse/smartcity/{table}/data/")
            assert uri.removeprefix(f"s3://{BUCKET}/") in keys
    assert any(
        k.startswith("warehouse/_checkpoints/stream/") for k in keys
    )  # checkpoint beside the warehouse
    assert list_partitions(settings, "gps_data") == ["2024-06-03"]
    assert len(list(iter_all(settings.progress_log))) >= 2
    if settings.catalog == "glue":
        glue = boto3.client("glue", endpoint_url=settings.s3_endpoint, region_name="us-east-1")
        table = glue.get_table(DatabaseName="smartcity", Name="gps_data")["Table"]
        location = table["Parameters"]["metadata_location"]
        assert location == load_table(settings, "gps_data").metadata_location
    else:
        assert (settings.home_dir / "catalog" / "iceberg.db").is_file()


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


def test_the_iam_documents_grant_every_action_the_run_needed(
    s3_drained: tuple[dict[str, str], Settings, dict],
) -> None:
    """The platform role (deploy/iam/spark-writer-policy.json + platform-catalog-policy.json)
    allows every Glue and S3 call the job, `movesmart query` and pyiceberg made."""
    _, settings, _ = s3_drained
    entries = recorded_requests(_recording(settings).read_text())
    used = actions_of_recorded_requests(entries)
    granted = granted_actions("spark-writer-policy.json") | granted_actions("platform-catalog-policy.json")
    assert used - granted == set()
    if settings.catalog == "glue":  # the Iceberg catalog's calls are the ones the run made
        assert {"glue:GetTable", "glue:CreateTable", "glue:UpdateTable"} <= used
        assert not [a for a in used if "Partition" in a]
    else:
        assert not [a for a in used if a.startswith("glue:")]
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= used
    # ... and only where the documents allow them: objects under the prefix, listings of it
    for entry in entries:
        url = urlsplit(entry["url"])
        if url.path == "/":  # Glue
            continue
        bucket, _, key = url.path.lstrip("/").partition("/")
        assert bucket == BUCKET, entry["url"]
        if key == "warehouse":  # the root probed as an object: granted to GET/HEAD alone
            assert entry["method"] in ("GET", "HEAD"), entry["url"]
        elif key:
            assert key.startswith("warehouse/"), entry["url"]
        for prefix in parse_qs(url.query).get("prefix", []):
            assert prefix == "warehouse" or prefix.startswith("warehouse/"), entry["url"]
