"""The five record schemas are defined once; every derived form must keep step with them.

Each derived form (Spark, Arrow, DuckDB, Glue, Redshift DDL) is checked field by field,
in order, against `schemas.RECORDS`; Arrow and DuckDB are also checked against each
other for real (a Parquet file written with the Arrow schema, described by DuckDB). The
last test adds a field in one place and watches it appear everywhere.
"""

from __future__ import annotations

import re
from dataclasses import replace

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movesmart_dagster import contract, schemas
from movesmart_dagster.schemas import (
    ALL_TABLES,
    LINEAGE_COLUMNS,
    PARTITION_COLUMN,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    RECORDS,
    Field,
    FieldType,
)

# The seed's field names, as the issue lists them: the contract with every producer.
SEED_FIELDS = {
    "vehicle": "id deviceId timestamp location speed direction make model year fuelType",
    "gps": "id deviceId timestamp speed direction vehicleType",
    "traffic": "id deviceId cameraId location timestamp snapshot",
    "weather": "id deviceId location timestamp temperature weatherCondition precipitation windSpeed humidity airQualityIndex",
    "emergency": "id deviceId incidentId type timestamp location status description",
}

# One expected type per FieldType in every target system.
ARROW = {
    FieldType.STRING: pa.string(),
    FieldType.DOUBLE: pa.float64(),
    FieldType.INT: pa.int32(),
    FieldType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    FieldType.LOCATION: pa.struct([("latitude", pa.float64()), ("longitude", pa.float64())]),
}
HIVE = {
    FieldType.STRING: "string",
    FieldType.DOUBLE: "double",
    FieldType.INT: "int",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.LOCATION: "struct<latitude:double,longitude:double>",
}
RECORD_TABLES = [r.table for r in RECORDS]


def _expected_columns(table: str) -> list[tuple[str, str]]:
    """(name, hive type) straight from RECORDS / the quarantine definition."""
    if table == QUARANTINE_TABLE:
        return list(QUARANTINE_COLUMNS)
    record = schemas.RECORDS_BY_NAME[table.removesuffix("_data")]
    return [(f.name, HIVE[f.type]) for f in record.fields] + list(LINEAGE_COLUMNS)


def test_records_carry_the_seed_names_topics_and_tables():
    assert {r.name: " ".join(r.field_names) for r in RECORDS} == SEED_FIELDS
    assert schemas.TOPICS == ("vehicle_data", "gps_data", "traffic_data", "weather_data", "emergency_data")
    assert schemas.TABLES == schemas.TOPICS
    assert (*schemas.TABLES, QUARANTINE_TABLE) == ALL_TABLES
    for r in RECORDS:
        assert [f.name for f in r.fields if f.required] == ["id", "deviceId", "timestamp"]
        assert schemas.RECORDS_BY_TOPIC[r.topic] is r and schemas.RECORDS_BY_NAME[r.name] is r


@pytest.mark.parametrize("table", ALL_TABLES)
def test_spark_table_schema_in_step(table):
    spark = schemas.spark_table_schema(table)
    cols = _expected_columns(table)
    assert spark.fieldNames() == [n for n, _ in cols] + [PARTITION_COLUMN]
    # Spark's own type names equal the Hive names (struct included), partition column last as a date
    assert (
        spark.simpleString()
        == "struct<" + ",".join(f"{n}:{t}" for n, t in cols) + f",{PARTITION_COLUMN}:date>"
    )


_ICEBERG = {
    "string": "string",
    "double": "double",
    "int": "int",
    "bigint": "long",
    "timestamp": "timestamptz",
    "binary": "binary",
}
_ICEBERG_STRUCT = "struct<latitude:double,longitude:double>"


@pytest.mark.parametrize("table", ALL_TABLES)
def test_iceberg_schema_in_step(table):
    from movesmart_dagster.tables.catalog import iceberg_schema

    schema = iceberg_schema(table)
    cols = _expected_columns(table)
    assert [f.name for f in schema.fields] == [n for n, _ in cols] + [PARTITION_COLUMN]
    # ids: the top-level columns 1..N in order, then the location struct's fields
    assert [f.field_id for f in schema.fields] == list(range(1, len(cols) + 2))
    n = len(cols) + 1
    iceberg = {
        **_ICEBERG,
        _ICEBERG_STRUCT: f"struct<{n + 1}: latitude: optional double, {n + 2}: longitude: optional double>",
    }
    assert [str(f.field_type) for f in schema.fields] == [iceberg[t] for _, t in cols] + ["date"]
    assert not any(f.required for f in schema.fields)


@pytest.mark.parametrize("table", ALL_TABLES)
def test_arrow_schema_in_step(table):
    arrow = schemas.arrow_table_schema(table)
    assert arrow.names == [n for n, _ in _expected_columns(table)]
    if table != QUARANTINE_TABLE:
        record = schemas.RECORDS_BY_NAME[table.removesuffix("_data")]
        assert [arrow.field(f.name).type for f in record.fields] == [ARROW[f.type] for f in record.fields]
    assert PARTITION_COLUMN not in arrow.names  # it lives in the folder names (event_date=...)


@pytest.mark.parametrize("table", ALL_TABLES)
def test_duckdb_reads_the_arrow_form_as_the_duckdb_form(table, tmp_path):
    """Not just names: a Parquet file written with the Arrow schema is what DuckDB's columns say."""
    path = tmp_path / f"{table}.parquet"
    pq.write_table(schemas.arrow_table_schema(table).empty_table(), path)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    norm = lambda t: re.sub(r'"', "", t).upper()  # noqa: E731 - DuckDB may quote struct members
    assert [(n, norm(t)) for n, t, *_ in described] == [
        (n, norm(t)) for n, t in schemas.duckdb_columns(table)
    ]
    assert [n for n, _ in schemas.duckdb_columns(table)] == [n for n, _ in _expected_columns(table)]


def test_adding_a_field_is_a_one_place_change(monkeypatch, tmp_path):
    """Add `odometer` to the vehicle record only; every derived form and the contract follow."""
    extended = replace(
        schemas.VEHICLE, fields=(*schemas.VEHICLE.fields, Field("odometer", FieldType.DOUBLE, minimum=0))
    )
    monkeypatch.setitem(schemas.RECORDS_BY_NAME, "vehicle", extended)
    table = "vehicle_data"
    position = len(schemas.VEHICLE.fields)  # right after the record's own fields, before lineage
    assert schemas.spark_table_schema(table).fieldNames()[position] == "odometer"
    assert schemas.arrow_table_schema(table).names[position] == "odometer"
    assert schemas.duckdb_columns(table)[position] == ("odometer", "DOUBLE")
    from movesmart_dagster.tables.catalog import iceberg_schema

    assert iceberg_schema(table).fields[position].name == "odometer"
    head = '{"id":"a","deviceId":"d","timestamp":"2024-06-03T08:00:00Z"'
    assert contract.validate(extended, head + ',"odometer":12345.6}').row["odometer"] == 12345.6
    assert contract.validate(extended, head + ',"odometer":-1}').code == "out_of_range"
