"""The JVM fast path's UDFs: `io.movesmart.spark.FastContract` configured and registered.

Why apart from the SQL that calls them: this is the boundary to the Java side
(jvm/spark-contract) — the JSON spec it reads, the struct it returns, the class name —
and it changes with that side, while the routing SQL (`fast_path.py`) only calls
`fast_udf_name(topic)`. The spec is built from `schemas.py` and the event-time rule, so
the schemas module stays the one source of the record layouts.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING

from movesmart_dagster.contract import EventTimeRule
from movesmart_dagster.schemas import LOCATION_FIELDS, RECORDS, FieldType, RecordSchema
from movesmart_dagster.streaming.validation.sql import sql_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FAST_CONTRACT_CLASS = "io.movesmart.spark.FastContract"
# field type -> (the spec's type name, the UDF's return type in Spark DDL)
_FAST_TYPES = {
    FieldType.STRING: ("string", "string"),
    FieldType.TIMESTAMP: ("timestamp", "bigint"),  # epoch microseconds
    FieldType.DOUBLE: ("double", "double"),
    FieldType.INT: ("int", "int"),
    FieldType.LOCATION: ("location", "struct<latitude: double, longitude: double>"),
}


def fast_udf_name(topic: str) -> str:
    return f"movesmart_fast_{topic}"


def _micros(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


def fast_contract_spec(record: RecordSchema, time_rule: EventTimeRule | None) -> str:
    """The record as the JVM fast path reads it (JSON): the schemas module stays the source,
    and the time rule is the reference's, in epoch microseconds."""
    import json
    from datetime import UTC, datetime

    event_time = None
    if time_rule is not None:
        event_time = {
            "field": record.event_time_field,
            "notBeforeMicros": _micros(time_rule.start - datetime(1970, 1, 1, tzinfo=UTC)),
            "maxAheadMicros": _micros(time_rule.max_future_skew),
        }

    return json.dumps(
        {
            "fields": [
                {
                    "name": f.name,
                    "type": _FAST_TYPES[f.type][0],
                    "required": f.required,
                    "minimum": f.minimum,
                    "maximum": f.maximum,
                }
                for f in record.fields
            ],
            "location": {lf.name: {"minimum": lf.minimum, "maximum": lf.maximum} for lf in LOCATION_FIELDS},
            "eventTime": event_time,
        }
    )


def fast_return_ddl(record: RecordSchema) -> str:
    return "struct<" + ", ".join(f"{sql_name(f.name)}: {_FAST_TYPES[f.type][1]}" for f in record.fields) + ">"


def register_fast_contract(spark: SparkSession, time_rule: EventTimeRule | None) -> None:
    """Register `movesmart_fast_<topic>(value, kafka_timestamp_micros)` (a Java UDF from
    .jars/spark) for every record, with the event-time rule (None: no rule)."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    for record in RECORDS:
        try:
            udf = functools.reduce(getattr, FAST_CONTRACT_CLASS.split("."), jvm)(
                fast_contract_spec(record, time_rule)
            )
        except TypeError as err:  # py4j: the class is not on the classpath
            raise RuntimeError(
                f"{FAST_CONTRACT_CLASS} is not on Spark's classpath (movesmart-spark-contract.jar): run `make setup`"
            ) from err
        return_type = jvm.org.apache.spark.sql.types.DataType.fromDDL(fast_return_ddl(record))
        spark._jsparkSession.udf().register(fast_udf_name(record.topic), udf, return_type)  # type: ignore[attr-defined]
