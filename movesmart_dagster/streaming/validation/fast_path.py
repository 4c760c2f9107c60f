"""The first validation pass, in the streaming plan: Spark SQL around the JVM fast path.

Why SQL text: one projection routes the rows of every topic (each row meets only its own
topic's UDF), so the job reads all topics through one source, and the checks that need no
parse (tombstone, size cap, UTF-8) carry the reference's own reason texts. The fast path
never rejects: a record it cannot vouch for gets `_dest = EXACT_DEST` and its bytes, for
the exact pass (`exact_path.py`). Its values stay one struct per table until after the
batch is cached (`packed_column`, `unpack`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from movesmart_dagster.contract import NOT_JSON, TOMBSTONE
from movesmart_dagster.schemas import PARTITION_COLUMN, QUARANTINE_TABLE, RECORDS, FieldType, RecordSchema
from movesmart_dagster.streaming.validation.fast_contract import fast_udf_name
from movesmart_dagster.streaming.validation.sql import sql_literal, sql_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

EXACT_DEST = "_exact"  # `_dest` of rows the fast pass leaves to the reference


def _pre_checks(view: str, cap: int) -> str:
    """The Kafka columns renamed, and the verdicts that need no parse (null, size, UTF-8),
    with the reference's reason texts."""
    return (
        "SELECT topic, partition AS kafka_partition, offset AS kafka_offset, timestamp AS kafka_timestamp, value, "
        f"CASE WHEN value IS NULL THEN {sql_literal(TOMBSTONE)} "
        f"WHEN octet_length(value) > {cap} THEN concat('oversized: ', octet_length(value), ' bytes > cap {cap}') "
        f"WHEN NOT is_valid_utf8(value) THEN {sql_literal(NOT_JSON)} END AS pre_reason "
        f"FROM {view}"
    )


def _routed_select(
    topic: str,
    inner_sql: str,
    *,
    dest: str,
    reason: str,
    raw_value: str,
    event_ts: str,
    valid: str,
    values: list[str],
) -> str:
    """The routed row, one shape for both routings (`topic`: an SQL expression): `_dest`,
    reason, lineage, raw bytes, event time, `event_date` (valid rows: the event's day;
    others: the day Kafka stamped them, deterministic on a re-run) and the value columns."""
    return (
        f"SELECT {dest} AS _dest, {reason} AS reason, {topic} AS kafka_topic, "
        f"kafka_partition, kafka_offset, kafka_timestamp, {raw_value} AS raw_value, {event_ts} AS event_ts, "
        f"CASE WHEN {valid} THEN to_date({event_ts}) ELSE to_date(kafka_timestamp) END AS {PARTITION_COLUMN}, "
        f"{', '.join(values)} FROM ({inner_sql})"
    )


def route_fast(df: DataFrame, max_message_bytes: int) -> DataFrame:
    """Kafka rows of any of the topics -> one routed row each, by the JVM fast path (the
    first of two passes; `register_fast_contract` must have run, with the time rule).

    The plainly valid rows get their table as `_dest` and their values packed in one
    struct column per table (`packed_column`; `unpack` spreads them into the routed
    shape); rows it cannot vouch for get `_dest = '_exact'` and their bytes in
    `raw_value`, for `reroute_exact`. One projection serves every topic — each row meets
    only its own topic's UDF — so the streaming job reads all topics through one source.
    """
    cap = int(max_message_bytes)
    view = "__movesmart_fast"
    df.createOrReplaceTempView(view)
    packed = {r.topic: packed_column(r.table) for r in RECORDS}

    # the topic as a small int: its string is compared once per row, not in every CASE below
    index = {r.topic: i for i, r in enumerate(RECORDS)}
    topic_index = (
        "CASE topic " + " ".join(f"WHEN {sql_literal(t)} THEN {i}" for t, i in index.items()) + " END"
    )

    def per_topic(value: Callable[[RecordSchema], str], default: str = "NULL") -> str:
        return (
            "CASE _t "
            + " ".join(f"WHEN {index[r.topic]} THEN {value(r)}" for r in RECORDS)
            + f" ELSE {default} END"
        )

    # the UDF runs once per row in its own projection; the outer one only reads its fields
    udfs = ", ".join(
        f"CASE WHEN pre_reason IS NULL AND _t = {index[r.topic]} "
        f"THEN {fast_udf_name(r.topic)}(value, unix_micros(kafka_timestamp)) END "
        f"AS {packed[r.topic]}"
        for r in RECORDS
    )
    sql = f"SELECT *, {topic_index} AS _t FROM ({_pre_checks(view, cap)})"
    sql = f"SELECT *, {udfs} FROM ({sql})"
    sql = f"SELECT *, {per_topic(lambda r: packed[r.topic] + ' IS NOT NULL', 'false')} AS _valid FROM ({sql})"

    def event_ts(r: RecordSchema) -> str:
        return f"timestamp_micros({packed[r.topic]}.{sql_name(r.event_time_field)})"

    routed = _routed_select(
        "topic",
        sql,
        dest=f"CASE WHEN pre_reason IS NOT NULL THEN {sql_literal(QUARANTINE_TABLE)} "
        f"WHEN NOT _valid THEN {sql_literal(EXACT_DEST)} ELSE {per_topic(lambda r: sql_literal(r.table))} END",
        reason="pre_reason",
        raw_value="CASE WHEN NOT _valid THEN value END",
        event_ts=per_topic(event_ts),
        valid="_valid",
        values=list(packed.values()),
    )
    return df.sparkSession.sql(routed)


def packed_column(table: str) -> str:
    """The fast path keeps a table's values as the UDF's one struct until after the cache:
    one struct column per table is far cheaper to cache than a column per field of every
    table, most of them NULL on any row."""
    return f"_packed__{table}"


def unpack(routed: DataFrame) -> DataFrame:
    """Fast-path rows in the routed shape: `<table>__<field>` columns, timestamps typed."""
    packed = {packed_column(r.table): r for r in RECORDS}
    cols: list[str] = []
    for name in routed.columns:
        record = packed.get(name)
        if record is None:
            cols.append(f"`{name}`")
            continue
        cols += [
            (
                f"timestamp_micros({name}.{sql_name(f.name)})"
                if f.type is FieldType.TIMESTAMP
                else f"{name}.{sql_name(f.name)}"
            )
            + f" AS `{record.table}__{f.name}`"
            for f in record.fields
        ]
    return routed.selectExpr(*cols)
