"""The second validation pass: the reference, `contract.validate`, on the driver.

Why on the driver and in bounded chunks: see the package docstring (`validation`). This
module judges the rows the fast path left undecided (`_dest = EXACT_DEST`), a chunk at a
time (`chunks.py` plans them), and hands the verdicts back to Spark as Arrow tables in the
routed shape, so the writes cannot tell which pass judged a row.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from movesmart_dagster.contract import EventTimeRule
from movesmart_dagster.schemas import PARTITION_COLUMN, QUARANTINE_TABLE, RECORDS_BY_TOPIC
from movesmart_dagster.streaming.validation.chunks import chunk_filters
from movesmart_dagster.streaming.validation.fast_path import EXACT_DEST

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

# the driver's share of a chunk of undecided records, in bytes of Kafka values
CHUNK_BYTES = 32 << 20
DEFAULT_CHUNK_ROWS = 50_000  # MOVESMART_DRIVER_VALIDATION_MAX_ROWS's default


def with_exact(routed: DataFrame, exact: DataFrame) -> DataFrame:
    """A fast pass's decided rows together with the reference's verdicts on the rest."""
    return routed.where(routed._dest != EXACT_DEST).unionByName(exact, allowMissingColumns=True)


def reroute_exact(
    routed: DataFrame,
    max_message_bytes: int,
    time_rule: EventTimeRule | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    chunk_bytes: int = CHUNK_BYTES,
) -> DataFrame:
    """The rows a fast pass left undecided (`_dest = '_exact'`), each judged by
    `contract.validate` on the driver, a bounded chunk at a time (see the package docstring).

    Returns rows of `routed`'s schema; when there are several chunks, each one's rows are
    already in Spark's block manager (memory and disk), none in the driver's Python.
    """
    raw = routed.where(routed._dest == EXACT_DEST).selectExpr(
        "kafka_topic AS topic",
        "kafka_partition AS partition",
        "kafka_offset AS offset",
        "kafka_timestamp AS timestamp",
        "raw_value AS value",
    )
    chunk_rows, chunk_bytes = max(1, chunk_rows), max(1, chunk_bytes)
    # the usual batch has a few odd records: one cheap aggregate shows they fit one chunk
    size = raw.selectExpr("count(*) AS n", "coalesce(sum(octet_length(value)), 0) AS bytes").first()
    if size is None or (size["n"] <= chunk_rows and size["bytes"] <= chunk_bytes):
        return route_by_reference(raw, routed.schema, max_message_bytes, time_rule)
    chunks = list(chunk_filters(raw, chunk_rows, chunk_bytes, max_message_bytes))
    if len(chunks) <= 1:
        return route_by_reference(raw, routed.schema, max_message_bytes, time_rule)
    frames = [
        route_by_reference(raw.where(where), routed.schema, max_message_bytes, time_rule).localCheckpoint(
            eager=True
        )
        for where in chunks
    ]
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def route_by_reference(
    raw: DataFrame, schema: StructType, max_message_bytes: int, time_rule: EventTimeRule | None
) -> DataFrame:
    """Kafka rows routed by the Python reference on the driver, as rows of `schema`; the
    time rule judges each event time against the row's Kafka timestamp (its ingestion).

    The rows go back to Spark as an Arrow table, which the JVM reads directly: no Python
    worker process is started (executors need no Python for this), and timestamps travel
    as UTC microseconds, never through the machine's local time zone.
    """
    from datetime import UTC
    from datetime import datetime as dt

    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from movesmart_dagster.contract import validate

    epoch = dt(1970, 1, 1, tzinfo=UTC)
    # collected as Arrow too: no pickled Row objects (half the time of collect() here)
    rows = raw.selectExpr("topic", "partition", "offset", "unix_micros(timestamp) AS ts", "value").toArrow()
    n = rows.num_rows
    columns: dict[str, list[Any]] = {name: [None] * n for name in schema.fieldNames()}
    for i, (topic, partition, offset, ts, value) in enumerate(
        zip(*(rows.column(c).to_pylist() for c in rows.column_names), strict=True)
    ):
        record = RECORDS_BY_TOPIC[topic]
        kafka_ts = epoch + timedelta(microseconds=ts)
        verdict = validate(record, value, max_message_bytes, time_rule, kafka_ts)
        cells: dict[str, Any] = {
            "kafka_topic": topic,
            "kafka_partition": partition,
            "kafka_offset": offset,
            "kafka_timestamp": kafka_ts,
        }
        if verdict.reason is not None:
            cells.update(_dest=QUARANTINE_TABLE, reason=verdict.reason, raw_value=value)
            cells[PARTITION_COLUMN] = kafka_ts.date()
        else:
            assert verdict.row is not None
            event_ts = verdict.row[record.event_time_field]
            cells.update(_dest=record.table, event_ts=event_ts)
            cells[PARTITION_COLUMN] = event_ts.date()  # the reference's timestamps are UTC
            for f in record.fields:
                cells[f"{record.table}__{f.name}"] = verdict.row[f.name]
        for name, cell in cells.items():
            columns[name][i] = cell
    table = pa.Table.from_pydict(columns, schema=to_arrow_schema(schema, timestamp_utc=True))  # UTC micros
    return raw.sparkSession.createDataFrame(table, schema)
