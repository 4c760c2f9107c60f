"""The Iceberg catalog of the tables: the `movesmart catalog properties` contract, the tables as
schemas.py defines them, schema evolution, and Glue mode against moto's real HTTP server.

Nothing is mocked: the local catalog is a real SQLite file opened by pyiceberg (and by Spark in
the streaming tests); Glue mode talks to moto's server (S3 and Glue on one loopback port) with
dummy credentials set in the environment only (a local ~/.aws is never read).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog

from movesmart_dagster import schemas
from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN, Field, FieldType, arrow_table_schema
from movesmart_dagster.settings import REPO_ROOT, Settings, load_settings
from movesmart_dagster.tables import catalog
from movesmart_dagster.tables.catalog import CatalogError, ensure_tables, iceberg_schema, load_table

TS = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "movesmart_dagster.cli", "catalog", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _open_every_table(printed: str, env: dict[str, str]) -> dict[str, int]:
    """What the acceptance checks do with the printed JSON, in a process of their own."""
    code = (
        "import json, sys\n"
        "from pyiceberg.catalog import load_catalog\n"
        "doc = json.loads(sys.stdin.read())\n"
        "c = load_catalog('movesmart', **doc['properties'])\n"
        f"print(json.dumps({{t: len(c.load_table(doc['namespace'] + '.' + t).schema().fields) for t in {list(ALL_TABLES)!r}}}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=printed,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _no_credentials(properties: dict[str, str]) -> None:
    for key, value in properties.items():
        assert not any(word in key.lower() for word in ("key", "secret", "token", "password")), key
        assert "testing" not in value and "local-secret" not in value, key


def test_properties_contract_on_the_local_catalog(tmp_path: Path) -> None:
    env = {"MOVESMART_HOME": str(tmp_path / "home")}
    ensured = _cli(env, "ensure")
    assert ensured.returncode == 0, ensured.stderr
    assert ensured.stdout.splitlines() == [f"smartcity.{t}: created" for t in ALL_TABLES]
    assert _cli(env, "ensure").stdout.splitlines() == [f"smartcity.{t}: unchanged" for t in ALL_TABLES]
    out = _cli(env, "properties")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["namespace"] == "smartcity"
    assert doc["properties"]["type"] == "sql"
    assert doc["properties"]["uri"] == f"sqlite:///{tmp_path / 'home' / 'catalog' / 'iceberg.db'}"
    _no_credentials(doc["properties"])
    opened = _open_every_table(out.stdout, env)
    assert opened == {t: len(iceberg_schema(t).fields) for t in ALL_TABLES}


def test_tables_follow_schemas_py(tmp_path: Path) -> None:
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    for table in ALL_TABLES:
        iceberg = load_table(settings, table)
        schema = iceberg.schema()
        # ids, names, types and nesting exactly as derived (location a struct with its own ids)
        assert schema.as_struct() == iceberg_schema(table).as_struct()
        expected = [n for n, _ in schemas.columns_for_table(table)] + [PARTITION_COLUMN]
        assert [f.name for f in schema.fields] == expected
        assert [f.field_id for f in schema.fields] == list(range(1, len(expected) + 1))
        (field,) = iceberg.spec().fields
        source = schema.find_column_name(field.source_id)
        assert source == ("kafka_timestamp" if table == "quarantine" else "timestamp")
        assert str(field.transform) == "day"
        assert iceberg.location() == f"{settings.warehouse}/smartcity/{table}"
        assert iceberg.properties["write.parquet.compression-codec"] == "zstd"
    weather = load_table(settings, "weather_data")
    location = weather.schema().find_field("location")
    assert [(f.field_id, f.name) for f in location.field_type.fields] == [(17, "latitude"), (18, "longitude")]
    assert weather.properties["write.parquet.dict-encoding-enabled.column.location.latitude"] == "false"
    assert "write.parquet.dict-encoding-enabled.column.weatherCondition" not in weather.properties


def _gps_rows(n: int) -> pa.Table:
    schema = arrow_table_schema("gps_data").append(pa.field(PARTITION_COLUMN, pa.date32()))
    rows = [
        {
            "id": f"id-{i}",
            "deviceId": "d",
            "timestamp": TS,
            "speed": 1.0,
            "kafka_topic": "gps_data",
            "kafka_partition": 0,
            "kafka_offset": i,
            "kafka_timestamp": TS,
            "ingested_at": TS,
            PARTITION_COLUMN: date(2024, 6, 3),
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=schema)


def _with_gps_fields(monkeypatch: pytest.MonkeyPatch, fields: tuple[Field, ...]) -> None:
    monkeypatch.setitem(schemas.RECORDS_BY_NAME, "gps", replace(schemas.GPS, fields=fields))


def test_a_field_added_in_schemas_py_is_added_without_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    gps = load_table(settings, "gps_data")
    gps.append(_gps_rows(3))
    before = load_table(settings, "gps_data")
    files_before = sorted(t.file.file_path for t in before.scan().plan_files())

    _with_gps_fields(monkeypatch, (*schemas.GPS.fields, Field("accuracy", FieldType.DOUBLE, minimum=0)))
    states = ensure_tables(settings)
    assert states["gps_data"] == "evolved"
    assert {t: s for t, s in states.items() if t != "gps_data"} == {
        t: "unchanged" for t in ALL_TABLES if t != "gps_data"
    }
    after = load_table(settings, "gps_data")
    added = after.schema().find_field("accuracy")
    assert added.field_id == max(before.schema().field_ids) + 1 and not added.required
    # metadata only: the same snapshot, the same files; old rows read the new field as null
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    assert sorted(t.file.file_path for t in after.scan().plan_files()) == files_before
    assert after.scan(selected_fields=("id", "accuracy")).to_arrow().column("accuracy").null_count == 3
    assert ensure_tables(settings)["gps_data"] == "unchanged"


def test_ensuring_tables_that_are_up_to_date_commits_nothing(tmp_path: Path) -> None:
    """The catalog job and every streaming start ensure the tables while the stream commits every
    trigger: a commit that changes nothing could only lose races (a soak's catalog job failed
    "Table has been updated by another process" when each ensure re-set `format-version`)."""
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    load_table(settings, "gps_data").append(_gps_rows(2))
    before = {t: load_table(settings, t).metadata_location for t in ALL_TABLES}
    assert ensure_tables(settings) == {t: "unchanged" for t in ALL_TABLES}
    assert {t: load_table(settings, t).metadata_location for t in ALL_TABLES} == before


def test_a_property_evolution_that_loses_a_race_with_the_stream_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream commits between pyiceberg's read of the catalog row and its conditional update
    (while it writes the new metadata file): the commit is refused, the evolution runs again."""
    from pyiceberg.catalog.sql import SqlCatalog

    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    with load_table(settings, "gps_data").transaction() as tx:
        tx.remove_properties("commit.retry.num-retries")
    real_write, raced = SqlCatalog._write_metadata, []

    def write_while_the_stream_commits(metadata, io, metadata_path):  # noqa: ANN001, ANN202
        real_write(metadata, io, metadata_path)
        if not raced and "/gps_data/" in metadata_path:
            raced.append(metadata_path)
            load_table(settings, "gps_data").append(_gps_rows(3))  # lands first

    monkeypatch.setattr(SqlCatalog, "_write_metadata", staticmethod(write_while_the_stream_commits))
    assert ensure_tables(settings)["gps_data"] == "unchanged"
    assert len(raced) == 1
    gps = load_table(settings, "gps_data")
    assert gps.properties["commit.retry.num-retries"] == "10"
    assert gps.scan().to_arrow().num_rows == 3  # the concurrent append stays
    assert gps.metadata_location != raced[0]  # the refused attempt's metadata is not the table's


def test_an_incompatible_change_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    original = load_table(settings, "gps_data").schema()
    retyped = tuple(replace(f, type=FieldType.STRING) if f.name == "speed" else f for f in schemas.GPS.fields)
    _with_gps_fields(monkeypatch, retyped)
    with pytest.raises(CatalogError, match=r"gps_data\.speed: the table has double, schemas.py wants string"):
        ensure_tables(settings)
    _with_gps_fields(monkeypatch, tuple(f for f in schemas.GPS.fields if f.name != "vehicleType"))
    with pytest.raises(CatalogError, match=r"gps_data\.vehicleType: in the table but not in schemas.py"):
        ensure_tables(settings)
    assert load_table(settings, "gps_data").schema() == original  # refused: nothing changed


def test_the_streaming_job_refuses_to_start_on_an_incompatible_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from movesmart_dagster.streaming.options import JobOptions
    from movesmart_dagster.streaming.query import StreamJob

    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    retyped = tuple(
        replace(f, type=FieldType.INT) if f.name == "direction" else f for f in schemas.GPS.fields
    )
    _with_gps_fields(monkeypatch, retyped)
    job = StreamJob(settings, JobOptions(available_now=True))
    assert job.run() == 1
    assert "cannot start:" in capsys.readouterr().err
    assert job._spark is None  # refused before Spark or Kafka were touched


# --- Glue mode, against moto ---------------------------------------------------------------------


@pytest.fixture
def glue_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Glue catalog, s3a warehouse in a fresh bucket, dummy credentials in the environment only."""
    suffix = uuid.uuid4().hex[:10]
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    }
    for key, value in aws.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    env = {
        **aws,
        "MOVESMART_HOME": str(tmp_path / "home"),
        "MOVESMART_CATALOG": "glue",
        "MOVESMART_WAREHOUSE": f"s3a://movesmart-{suffix}/warehouse",
        "MOVESMART_S3_ENDPOINT": moto_endpoint,
        "MOVESMART_GLUE_DATABASE": f"smartcity_{suffix}",
    }
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=f"movesmart-{suffix}"
    )
    return env


def test_glue_mode_registers_iceberg_tables_in_the_database(glue_env: dict[str, str]) -> None:
    settings: Settings = load_settings(glue_env)
    assert ensure_tables(settings) == {t: "created" for t in ALL_TABLES}
    assert ensure_tables(settings) == {t: "unchanged" for t in ALL_TABLES}
    glue = boto3.client("glue", endpoint_url=settings.s3_endpoint, region_name="us-east-1")
    tables = glue.get_tables(DatabaseName=settings.glue_database)["TableList"]
    assert sorted(t["Name"] for t in tables) == sorted(ALL_TABLES)
    bucket = settings.warehouse_bucket
    for t in tables:
        assert t["Parameters"]["table_type"].upper() == "ICEBERG"
        # s3://, never s3a://: what Athena and Redshift read
        assert t["Parameters"]["metadata_location"].startswith(
            f"s3://{bucket}/warehouse/{settings.glue_database}/"
        )
        assert not glue.get_partitions(DatabaseName=settings.glue_database, TableName=t["Name"])["Partitions"]

    out = _cli(glue_env, "properties")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["namespace"] == settings.glue_database
    assert doc["properties"]["type"] == "glue"
    assert doc["properties"]["glue.endpoint"] == settings.s3_endpoint
    _no_credentials(doc["properties"])
    assert _open_every_table(out.stdout, glue_env) == {t: len(iceberg_schema(t).fields) for t in ALL_TABLES}
    # an append through pyiceberg is a new Glue metadata location, read back through the catalog
    gps = load_catalog("movesmart", **doc["properties"]).load_table(f"{doc['namespace']}.gps_data")
    gps.append(_gps_rows(4))
    assert catalog.load_table(settings, "gps_data").scan().to_arrow().num_rows == 4


def test_glue_mode_needs_an_s3_warehouse(tmp_path: Path) -> None:
    from movesmart_dagster.settings import SettingsError

    with pytest.raises(SettingsError, match="MOVESMART_CATALOG"):
        load_settings({"MOVESMART_HOME": str(tmp_path), "MOVESMART_CATALOG": "glue"})
