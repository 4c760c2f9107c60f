"""The five Move Smart record types, defined once; every other form is derived here.

Why one module: the seed declared each schema three times (producer dicts, Spark
StructTypes, Glue crawler guesses) and they drifted — a misspelt field silently became
an all-null column. Here a record is a tuple of `Field`s; the Spark schema, the Arrow
schema, the Glue/Redshift column list, the DuckDB types and the validation rules
(`movesmart_dagster.contract`) are all functions of it. Adding a field is one line in
`RECORDS`; `movesmart_dagster_tests/test_schemas.py` proves the derived forms keep step.

Names are the seed's: topics `<name>_data`, tables named like the topics, fields in
camelCase as the producers send them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # heavy imports stay out of module import time
    import pyarrow as pa
    from pyspark.sql.types import DataType, StructType


class FieldType(StrEnum):
    STRING = "string"
    DOUBLE = "double"
    INT = "int"
    TIMESTAMP = "timestamp"  # ISO-8601 text on the wire; naive means UTC
    LOCATION = "location"  # {latitude, longitude} or [lat, lon] on the wire


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class RecordSchema:
    name: str
    fields: tuple[Field, ...]
    doc: str = ""

    @property
    def topic(self) -> str:
        return f"{self.name}_data"

    @property
    def table(self) -> str:
        return f"{self.name}_data"

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def event_time_field(self) -> str:
        """The record's event time: the field its rows are partitioned by (event_date)."""
        return next(f.name for f in self.fields if f.type is FieldType.TIMESTAMP)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


# --- the records -----------------------------------------------------------------------
def _common_head() -> tuple[Field, ...]:
    return (
        Field("id", FieldType.STRING, required=True, doc="record id (UUID)"),
        Field("deviceId", FieldType.STRING, required=True, doc="vehicle/device that sent it"),
    )


_TIMESTAMP = Field("timestamp", FieldType.TIMESTAMP, required=True, doc="event time, ISO-8601")
_LOCATION = Field("location", FieldType.LOCATION, doc="WGS84 position")

VEHICLE = RecordSchema(
    "vehicle",
    (
        *_common_head(),
        _TIMESTAMP,
        _LOCATION,
        Field("speed", FieldType.DOUBLE, minimum=0, maximum=300, doc="km/h"),
        Field("direction", FieldType.STRING, doc="heading, e.g. North-East"),
        Field("make", FieldType.STRING),
        Field("model", FieldType.STRING),
        Field("year", FieldType.INT, minimum=1900, maximum=2100, doc="model year"),
        Field("fuelType", FieldType.STRING),
    ),
    doc="vehicle telemetry",
)
GPS = RecordSchema(
    "gps",
    (
        *_common_head(),
        _TIMESTAMP,
        Field("speed", FieldType.DOUBLE, minimum=0, maximum=300, doc="km/h"),
        Field("direction", FieldType.STRING),
        Field("vehicleType", FieldType.STRING),
    ),
    doc="GPS fixes",
)
TRAFFIC = RecordSchema(
    "traffic",
    (
        *_common_head(),
        Field("cameraId", FieldType.STRING),
        _LOCATION,
        _TIMESTAMP,
        Field("snapshot", FieldType.STRING, doc="Base64 image placeholder"),
    ),
    doc="traffic camera snapshots",
)
WEATHER = RecordSchema(
    "weather",
    (
        *_common_head(),
        _LOCATION,
        _TIMESTAMP,
        Field("temperature", FieldType.DOUBLE, minimum=-90, maximum=60, doc="degrees Celsius"),
        Field("weatherCondition", FieldType.STRING, doc="free text, e.g. Sunny, clear sky"),
        Field("precipitation", FieldType.DOUBLE, minimum=0, doc="mm"),
        Field("windSpeed", FieldType.DOUBLE, minimum=0, doc="km/h"),
        Field("humidity", FieldType.DOUBLE, minimum=0, maximum=100, doc="percent"),
        Field("airQualityIndex", FieldType.DOUBLE, minimum=0, doc="AQI"),
    ),
    doc="weather along the route",
)
EMERGENCY = RecordSchema(
    "emergency",
    (
        *_common_head(),
        Field("incidentId", FieldType.STRING),
        Field("type", FieldType.STRING, doc="e.g. Accident, Fire, Medical, Police"),
        _TIMESTAMP,
        _LOCATION,
        Field("status", FieldType.STRING, doc="Active or Resolved"),
        Field("description", FieldType.STRING),
    ),
    doc="emergency incidents",
)

RECORDS: tuple[RecordSchema, ...] = (VEHICLE, GPS, TRAFFIC, WEATHER, EMERGENCY)
RECORDS_BY_NAME: dict[str, RecordSchema] = {r.name: r for r in RECORDS}
RECORDS_BY_TOPIC: dict[str, RecordSchema] = {r.topic: r for r in RECORDS}
TOPICS: tuple[str, ...] = tuple(r.topic for r in RECORDS)
TABLES: tuple[str, ...] = tuple(r.table for r in RECORDS)
QUARANTINE_TABLE = "quarantine"
ALL_TABLES: tuple[str, ...] = (*TABLES, QUARANTINE_TABLE)
PARTITION_COLUMN = "event_date"

LOCATION_FIELDS = (
    Field("latitude", FieldType.DOUBLE, minimum=-90, maximum=90),
    Field("longitude", FieldType.DOUBLE, minimum=-180, maximum=180),
)

# Columns every table row carries besides the record's own (lineage), in order.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kafka_topic", "string"),
    ("kafka_partition", "int"),
    ("kafka_offset", "bigint"),
    ("kafka_timestamp", "timestamp"),
    ("ingested_at", "timestamp"),
)
# The quarantine table: where every record that fails validation lands, bytes intact.
QUARANTINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kafka_topic", "string"),
    ("kafka_partition", "int"),
    ("kafka_offset", "bigint"),
    ("kafka_timestamp", "timestamp"),
    ("raw_value", "binary"),
    ("reason", "string"),
    ("ingested_at", "timestamp"),
)

# --- derived: a neutral (Hive/Glue) type name per field --------------------------------
_HIVE = {
    FieldType.STRING: "string",
    FieldType.DOUBLE: "double",
    FieldType.INT: "int",
    FieldType.TIMESTAMP: "timestamp",
    FieldType.LOCATION: "struct<latitude:double,longitude:double>",
}


def hive_type(field: Field) -> str:
    return _HIVE[field.type]


def table_columns(record: RecordSchema) -> list[tuple[str, str]]:
    """(name, hive type) of every stored column of a record table, partition column excluded."""
    return [(f.name, hive_type(f)) for f in record.fields] + list(LINEAGE_COLUMNS)


def columns_for_table(table: str) -> list[tuple[str, str]]:
    """(name, hive type) of a table's stored columns, the quarantine table included."""
    if table == QUARANTINE_TABLE:
        return list(QUARANTINE_COLUMNS)
    return table_columns(RECORDS_BY_NAME[table.removesuffix("_data")])


# --- derived: Spark --------------------------------------------------------------------


def _spark_type(hive: str) -> DataType:
    from pyspark.sql import types as T

    simple = {
        "string": T.StringType(),
        "double": T.DoubleType(),
        "int": T.IntegerType(),
        "bigint": T.LongType(),
        "timestamp": T.TimestampType(),
        "binary": T.BinaryType(),
    }
    if hive in simple:
        return simple[hive]
    return T.StructType(
        [T.StructField(f.name, T.DoubleType()) for f in LOCATION_FIELDS]
    )  # the only struct we have: location


def spark_table_schema(table: str) -> StructType:
    """A stored table's schema in Spark, partition column (`event_date`, date) last."""
    from pyspark.sql import types as T

    cols = [T.StructField(n, _spark_type(t)) for n, t in columns_for_table(table)]
    return T.StructType([*cols, T.StructField(PARTITION_COLUMN, T.DateType())])


# --- derived: Arrow / DuckDB -----------------------------------------------------------


def _arrow_type(hive: str) -> pa.DataType:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "double": pa.float64(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "binary": pa.binary(),
    }
    if hive in simple:
        return simple[hive]
    return pa.struct([(f.name, pa.float64()) for f in LOCATION_FIELDS])


def arrow_table_schema(table: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(n, _arrow_type(t)) for n, t in columns_for_table(table)])


_DUCKDB = {
    "string": "VARCHAR",
    "double": "DOUBLE",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "binary": "BLOB",
    "struct<latitude:double,longitude:double>": "STRUCT(latitude DOUBLE, longitude DOUBLE)",
}


def duckdb_columns(table: str) -> list[tuple[str, str]]:
    return [(n, _DUCKDB[t]) for n, t in columns_for_table(table)]
