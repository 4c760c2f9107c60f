"""An old warehouse (the plain-Parquet layout before Iceberg): refused at start, imported once.

The old warehouse is written the way the previous job left it (`git show b7d3dab^` for its
committer and README): `<warehouse>/<table>/event_date=D/part-<query>-b<batch>-<task>-<n>.zstd.parquet`
with the stored columns of `schemas.py` and no `event_date` column (Spark's partitionBy keeps it
in the folder name only), timestamps as UTC microseconds, `location` a struct; beside them a
failed attempt's files in `<table>/_staging/` (never visible, never imported) and the manifests
under `_manifests/`; in Glue mode, the Hive table definitions the old job registered. Then the
real CLI in subprocesses: the job and `movesmart catalog ensure` refuse, the import (real Spark),
exact counts through `movesmart query` and pyiceberg, the job streams from a real broker.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from movesmart_dagster.schemas import (
    ALL_TABLES,
    PARTITION_COLUMN,
    QUARANTINE_TABLE,
    RECORDS_BY_NAME,
    TABLES,
    arrow_table_schema,
    columns_for_table,
)
from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.s3_endpoint import LocalS3Endpoint
from movesmart_dagster.tables.catalog import load_catalog, load_table
from movesmart_dagster.tables.legacy import IMPORT_COMMAND, IMPORT_PROPERTY
from movesmart_dagster.tables.warehouse import arrow_filesystem
from movesmart_dagster_tests.conftest import DUMMY_AWS, s3_stack_env, stack_env
from movesmart_dagster_tests.test_streaming_support import end_offsets, landed, run_cli, simulate

QUERY_TAG = "3f2a9c1e7b40"  # the old file names carried the first 12 hex digits of the query id
OLD_OFFSET_BASE = 10**9  # the old rows' offsets: apart from what the new broker hands out
DAY1, DAY2 = date(2024, 2, 1), date(2024, 2, 2)
# (table, day) -> rows per file, as the old job's micro-batches left them
OLD_FILES: dict[tuple[str, date], list[int]] = {
    ("gps_data", DAY1): [3, 2],
    ("gps_data", DAY2): [4],
    ("vehicle_data", DAY1): [2],
    (QUARANTINE_TABLE, DAY1): [1],
}
STAGED_ROWS = 3  # a failed attempt's file in gps_data/_staging: not data


def expected_rows() -> dict[tuple[str, date], int]:
    return {key: sum(rows) for key, rows in OLD_FILES.items()}


def _old_rows(table: str, day: date, n: int, first_offset: int) -> pa.Table:
    """n rows of a table as the old job stored them (stored columns, no event_date)."""
    schema = arrow_table_schema(table)
    at = [datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(minutes=i) for i in range(n)]
    topic = table if table != QUARANTINE_TABLE else "gps_data"
    values: dict[str, list] = {}
    for field in schema:
        name, kind = field.name, field.type
        if name == "kafka_topic":
            values[name] = [topic] * n
        elif name == "kafka_partition":
            values[name] = [0] * n
        elif name == "kafka_offset":
            values[name] = [first_offset + i for i in range(n)]
        elif name == "raw_value":
            values[name] = [b'{"id": "x", "speed": "fast"}'] * n
        elif name == "reason":
            values[name] = ["invalid_type: speed is not a number"] * n
        elif pa.types.is_timestamp(kind):
            values[name] = at
        elif pa.types.is_struct(kind):
            values[name] = [{"latitude": 51.5 + i / 100, "longitude": -0.12} for i in range(n)]
        elif pa.types.is_floating(kind):
            values[name] = [40.0 + i for i in range(n)]
        elif pa.types.is_integer(kind):
            values[name] = [2020] * n
        else:
            values[name] = [f"{table}-{day.isoformat()}-{first_offset + i}" for i in range(n)]
    return pa.table(values, schema=schema)


def write_old_warehouse(settings: Settings) -> None:
    fs, root = arrow_filesystem(settings)
    offset = OLD_OFFSET_BASE
    for (table, day), sizes in OLD_FILES.items():
        folder = f"{root}/{table}/event_date={day.isoformat()}"
        fs.create_dir(folder, recursive=True)
        for batch, n in enumerate(sizes):
            name = f"part-{QUERY_TAG}-b{batch:010d}-0-0.zstd.parquet"
            pq.write_table(
                _old_rows(table, day, n, offset), f"{folder}/{name}", filesystem=fs, compression="zstd"
            )
            offset += n
    staged = f"{root}/gps_data/_staging/batch=9/event_date={DAY2.isoformat()}"
    fs.create_dir(staged, recursive=True)
    pq.write_table(
        _old_rows("gps_data", DAY2, STAGED_ROWS, offset),
        f"{staged}/part-00000-0b6e0c1c-8d1b-4a8e-9f57-3a3f0b5e2c11.c000.zstd.parquet",
        filesystem=fs,
        compression="zstd",
    )
    fs.create_dir(f"{root}/_manifests/{QUERY_TAG}", recursive=True)
    with fs.open_output_stream(f"{root}/_manifests/{QUERY_TAG}/batch-8.json") as out:
        out.write(b'{"query_id": "q", "batch_id": 8, "moves": []}')


def register_old_glue_tables(settings: Settings) -> None:
    """The Hive tables the old job's catalog step created (Parquet SerDe, partitioned by event_date)."""
    glue = boto3.client("glue", endpoint_url=settings.s3_endpoint, region_name=settings.aws_region)
    glue.create_database(DatabaseInput={"Name": settings.glue_database})
    for table in ALL_TABLES:
        glue.create_table(
            DatabaseName=settings.glue_database,
            TableInput={
                "Name": table,
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE"},
                "StorageDescriptor": {
                    "Columns": [{"Name": n, "Type": t} for n, t in columns_for_table(table)],
                    "Location": f"{settings.warehouse.replace('s3a://', 's3://')}/{table}/",
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    "SerdeInfo": {
                        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    },
                },
                "PartitionKeys": [{"Name": PARTITION_COLUMN, "Type": "string"}],
            },
        )


# --- reading back -------------------------------------------------------------------------------


def rows_by_day_query(env: dict[str, str]) -> dict[tuple[str, date], int]:
    """Rows per (table, event_date) by `movesmart query` (DuckDB over pyiceberg's scan plan)."""
    sql = " union all ".join(
        f"select '{t}' as t, event_date, count(*) as n from {t} group by 2" for t in ALL_TABLES
    )
    proc = run_cli(env, "query", sql, "--format", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reader = csv.reader(io.StringIO(proc.stdout))
    assert next(reader) == ["t", "event_date", "n"]
    return {(t, date.fromisoformat(d)): int(n) for t, d, n in reader}


def rows_by_day_pyiceberg(settings: Settings) -> dict[tuple[str, date], int]:
    catalog = load_catalog(settings)
    out: dict[tuple[str, date], int] = {}
    for table in ALL_TABLES:
        arrow = load_table(settings, table, catalog).scan(selected_fields=("event_date",)).to_arrow()
        for d in arrow.column("event_date").to_pylist():
            out[(table, d)] = out.get((table, d), 0) + 1
    return out


def import_snapshots(settings: Settings) -> dict[str, list[str]]:
    catalog = load_catalog(settings)
    out = {}
    for table in ALL_TABLES:
        snaps = load_table(settings, table, catalog).snapshots()
        out[table] = [
            s.summary.additional_properties[IMPORT_PROPERTY]
            for s in snaps
            if s.summary and IMPORT_PROPERTY in s.summary.additional_properties
        ]
    return out


def assert_refused(proc, warehouse: str) -> None:  # noqa: ANN001
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "previous plain-Parquet layout" in proc.stderr
    assert warehouse in proc.stderr
    assert f"`{IMPORT_COMMAND}`" in proc.stderr
    assert "gps_data (2 days, 3 files)" in proc.stderr and "quarantine (1 day, 1 file)" in proc.stderr


# --- local warehouse, real broker ------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_old(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Settings]]:
    env = stack_env(tmp_path_factory.mktemp("legacy-home"))
    settings = load_settings(env)
    write_old_warehouse(settings)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        yield env, settings
    finally:
        broker.down()


def test_old_local_warehouse_is_refused_imported_once_and_the_job_starts(
    local_old: tuple[dict[str, str], Settings],
) -> None:
    env, settings = local_old
    warehouse = Path(settings.warehouse.removeprefix("file://"))

    # the job and the catalog step refuse, before creating anything
    assert_refused(run_cli(env, "stream", "--available-now"), str(warehouse))
    assert_refused(run_cli(env, "catalog", "ensure"), str(warehouse))
    assert not (warehouse / settings.glue_database).exists()

    # a dry run lists each day (rows by the footers) and changes nothing
    dry = run_cli(env, "tables", "import-legacy", "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "gps_data 2024-02-01: 2 files" in dry.stdout and "5 rows would be imported" in dry.stdout
    assert len(dry.stdout.splitlines()) == len(OLD_FILES)
    assert (warehouse / "gps_data" / "event_date=2024-02-01").is_dir()

    done = run_cli(env, "tables", "import-legacy")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gps_data 2024-02-01: 2 files, 5 rows imported" in done.stdout
    assert "imported 12 rows from 5 files (4 day folders, 3 tables)" in done.stdout
    assert rows_by_day_query(env) == expected_rows()  # the staged failed attempt is not there
    assert rows_by_day_pyiceberg(settings) == expected_rows()
    # values as written: the location struct, the quarantined bytes and reason, event times
    vehicle = load_table(settings, "vehicle_data").scan().to_arrow().sort_by("kafka_offset").to_pylist()
    assert [r["location"] for r in vehicle] == [
        {"latitude": 51.5, "longitude": -0.12},
        {"latitude": 51.51, "longitude": -0.12},
    ]
    assert vehicle[0]["timestamp"] == datetime(2024, 2, 1, 8, tzinfo=UTC)
    assert vehicle[0]["make"] == f"vehicle_data-2024-02-01-{vehicle[0]['kafka_offset']}"
    (bad,) = load_table(settings, QUARANTINE_TABLE).scan().to_arrow().to_pylist()
    assert bad["raw_value"] == b'{"id": "x", "speed": "fast"}'
    assert bad["reason"] == "invalid_type: speed is not a number"

    # the old folders moved under _legacy/ (readers skip it); the job's start passes
    assert sorted(p.name for p in warehouse.iterdir()) == ["_legacy", settings.glue_database]
    legacy = warehouse / "_legacy"
    assert len(list((legacy / "gps_data" / "event_date=2024-02-01").glob("part-*.parquet"))) == 2
    assert (legacy / "gps_data" / "_staging").is_dir() and (legacy / "_manifests" / QUERY_TAG).is_dir()
    assert run_cli(env, "catalog", "ensure").returncode == 0

    # committed but not moved (a crash between the two): the re-run moves it, imports nothing
    shutil.copytree(
        legacy / "gps_data" / "event_date=2024-02-02", warehouse / "gps_data" / "event_date=2024-02-02"
    )
    again = run_cli(env, "tables", "import-legacy")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "gps_data 2024-02-02: already imported" in again.stdout
    assert "imported 0 rows from 0 files" in again.stdout
    assert not (warehouse / "gps_data").exists()
    assert rows_by_day_query(env) == expected_rows()
    assert import_snapshots(settings)["gps_data"] == [
        "gps_data/event_date=2024-02-01",
        "gps_data/event_date=2024-02-02",
    ]
    nothing = run_cli(env, "tables", "import-legacy")
    assert nothing.returncode == 0 and nothing.stdout.startswith("nothing to import"), nothing.stdout

    # the job starts and streams beside the imported rows: every new offset exactly once
    simulate(env, "--vehicles", "1", "--seed", "3", "--max-events", "300")
    run = run_cli(env, "stream", "--available-now")
    assert run.returncode == 0, run.stderr[-4000:]
    rows = landed(settings)
    for table in TABLES:
        topic = RECORDS_BY_NAME[table.removesuffix("_data")].topic
        old = sum(n for (t, _), n in expected_rows().items() if t == table)
        new = sorted((p, o) for _, tp, p, o in rows[table] if o < OLD_OFFSET_BASE)
        wanted = sorted((p, o) for p, end in end_offsets(settings)[topic].items() for o in range(end))
        assert new == wanted, table
        assert len(rows[table]) == old + len(wanted), table
    assert len(rows[QUARANTINE_TABLE]) == 1


# --- s3a:// warehouse on the local S3 endpoint, both catalogs ---------------------------------------


@contextlib.contextmanager
def s3_warehouse(home: Path, catalog: str) -> Iterator[tuple[dict[str, str], Settings]]:
    """An empty bucket on the local S3 endpoint (moto: S3 and Glue) and the env pointing at it."""
    env = s3_stack_env(home, catalog, "s3a://movesmart-legacy/warehouse")
    settings = load_settings(env)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in DUMMY_AWS.items():
            mp.setenv(k, v)
        s3 = LocalS3Endpoint(settings)
        s3.up()
        try:
            boto3.client("s3", endpoint_url=settings.s3_endpoint, region_name="us-east-1").create_bucket(
                Bucket="movesmart-legacy"
            )
            yield env, settings
        finally:
            s3.down()


@pytest.fixture(params=["local", "glue"])
def s3_old(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], Settings]]:
    with s3_warehouse(tmp_path, request.param) as (env, settings):
        write_old_warehouse(settings)
        if settings.catalog == "glue":
            register_old_glue_tables(settings)
        yield env, settings


def test_old_s3_warehouse_is_refused_and_imported_once(s3_old: tuple[dict[str, str], Settings]) -> None:
    env, settings = s3_old
    assert_refused(run_cli(env, "catalog", "ensure"), settings.warehouse)

    done = run_cli(env, "tables", "import-legacy")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported 12 rows from 5 files (4 day folders, 3 tables)" in done.stdout
    if settings.catalog == "glue":
        assert "gps_data: old Glue (Hive) table definition dropped (files untouched)" in done.stdout
    assert rows_by_day_query(env) == expected_rows()
    assert rows_by_day_pyiceberg(settings) == expected_rows()

    fs, root = arrow_filesystem(settings)
    top = {i.path.rsplit("/", 1)[-1] for i in fs.get_file_info(pafs.FileSelector(root))}
    assert top == {"_legacy", settings.glue_database}
    assert run_cli(env, "catalog", "ensure").returncode == 0
    again = run_cli(env, "tables", "import-legacy")
    assert again.returncode == 0 and again.stdout.startswith("nothing to import"), again.stdout
    assert rows_by_day_query(env) == expected_rows()


def test_old_glue_definitions_alone_are_named_and_replaced(tmp_path: Path) -> None:
    """Glue still holding the old job's Hive tables (no old folders left): the start names the
    table and the import command, which replaces the definitions without starting Spark."""
    with s3_warehouse(tmp_path, "glue") as (env, settings):
        register_old_glue_tables(settings)
        refused = run_cli(env, "catalog", "ensure")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "smartcity.vehicle_data is in the catalog but is not an Iceberg table" in refused.stderr
        assert f"`{IMPORT_COMMAND}`" in refused.stderr

        done = run_cli(env, "tables", "import-legacy")
        assert done.returncode == 0, done.stderr[-3000:]
        assert [line for line in done.stdout.splitlines() if "dropped" in line] == [
            f"{t}: old Glue (Hive) table definition dropped (files untouched)" for t in ALL_TABLES
        ]
        assert "Spark" not in done.stderr  # no session was started for nothing
        ensured = run_cli(env, "catalog", "ensure")
        assert ensured.returncode == 0, ensured.stderr[-3000:]
        assert ensured.stdout.splitlines() == [f"smartcity.{t}: unchanged" for t in ALL_TABLES]
        assert rows_by_day_pyiceberg(settings) == {}


def test_a_folder_the_old_job_could_not_have_written_is_named_not_guessed(tmp_path: Path) -> None:
    env = stack_env(tmp_path)
    settings = load_settings(env)
    fs, root = arrow_filesystem(settings)
    folder = f"{root}/gps_data/event_date=yesterday"
    fs.create_dir(folder)
    pq.write_table(_old_rows("gps_data", DAY1, 1, 0), f"{folder}/part-0.parquet", filesystem=fs)
    proc = run_cli(env, "catalog", "ensure")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{folder}: not a day folder the previous layout wrote (event_date=YYYY-MM-DD)" in proc.stderr
    assert not (tmp_path / "warehouse" / settings.glue_database).exists()
