"""The data contract in the streaming job: a JVM fast path, then the reference itself.

How a batch is routed (see `route`): the Kafka columns first meet the checks that need no
parse (tombstone, size cap, UTF-8), written as SQL with the reference's own reason texts
(`contract.TOMBSTONE`, `contract.NOT_JSON`, the `oversized` text). Then the JVM fast
path (`register_fast_contract`, `io.movesmart.spark.FastContract`, configured from
`schemas.py` and the event-time rule) accepts the plainly valid records in one Jackson pass;
it never rejects. The records it cannot vouch for get `_dest = '_exact'` and `reroute_exact`
judges every one of them with `contract.validate` — the reference — on the driver, in
bounded chunks. Both passes judge a record's event time against its ingestion time, the
Kafka record timestamp (`contract.EventTimeRule`): the fast path gets it as the UDF's second
argument, the reference as `ingested_at`.

Why the reference judges every undecided record, however many: a record's verdict and its
reason text must not depend on what else is in its batch. An earlier design switched
to the same rules written as Spark SQL when a batch held more than
`MOVESMART_DRIVER_VALIDATION_MAX_ROWS` undecided records, and that SQL differed from the
reference in documented corners (ISO week dates, glued objects, UTF-16, float notation in
reasons): the same payload could land in a table alone and in quarantine among 100,000 bad
records. It was retired rather than chased corner by corner.

Why on the driver, not on the executors: running the reference on executors means
Python worker processes, and the job dropped those after one survived a `kill -9` of the
job. The driver is already a Python process; it judges some 30,000 small undecided
records a second on a busy 2-core machine, which only a whole stream in an unusual dialect
would strain (its valid records would then wait for the driver, not be misjudged).

Why in chunks: the driver holds one chunk at a time — at most
`MOVESMART_DRIVER_VALIDATION_MAX_ROWS` records and about `CHUNK_BYTES` (or one record of up
to the size cap) — and each chunk's verdicts go back to Spark's block manager
(`localCheckpoint`, memory and disk) before the next chunk is fetched, so the driver's
memory stays within its setting however large the batch. Chunks are contiguous offset
ranges per Kafka partition, planned from per-bucket counts, so fetching one is a filter.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from movesmart_dagster.contract import NOT_JSON, TOMBSTONE, EventTimeRule
from movesmart_dagster.schemas import (
    LINEAGE_COLUMNS,
    LOCATION_FIELDS,
    PARTITION_COLUMN,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    RECORDS,
    RECORDS_BY_NAME,
    RECORDS_BY_TOPIC,
    FieldType,
    RecordSchema,
)

if TYPE_CHECKING:
    from datetime import datetime

    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

EXACT_DEST = "_exact"  # `_dest` of rows the fast pass leaves to the reference
# the driver's share of a chunk of undecided records, in bytes of Kafka values
CHUNK_BYTES = 32 << 20
DEFAULT_CHUNK_ROWS = 50_000  # MOVESMART_DRIVER_VALIDATION_MAX_ROWS's default


def _lit(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _q(name: str) -> str:
    return f"`{name}`"


def _pre_checks(view: str, cap: int) -> str:
    """The Kafka columns renamed, and the verdicts that need no parse (null, size, UTF-8),
    with the reference's reason texts."""
    return (
        "SELECT topic, partition AS kafka_partition, offset AS kafka_offset, timestamp AS kafka_timestamp, value, "
        f"CASE WHEN value IS NULL THEN {_lit(TOMBSTONE)} "
        f"WHEN octet_length(value) > {cap} THEN concat('oversized: ', octet_length(value), ' bytes > cap {cap}') "
        f"WHEN NOT is_valid_utf8(value) THEN {_lit(NOT_JSON)} END AS pre_reason "
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
    topic_index = "CASE topic " + " ".join(f"WHEN {_lit(t)} THEN {i}" for t, i in index.items()) + " END"

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
        return f"timestamp_micros({packed[r.topic]}.{_q(r.event_time_field)})"

    routed = _routed_select(
        "topic",
        sql,
        dest=f"CASE WHEN pre_reason IS NOT NULL THEN {_lit(QUARANTINE_TABLE)} "
        f"WHEN NOT _valid THEN {_lit(EXACT_DEST)} ELSE {per_topic(lambda r: _lit(r.table))} END",
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
                f"timestamp_micros({name}.{_q(f.name)})"
                if f.type is FieldType.TIMESTAMP
                else f"{name}.{_q(f.name)}"
            )
            + f" AS `{record.table}__{f.name}`"
            for f in record.fields
        ]
    return routed.selectExpr(*cols)


# --- the JVM fast path ---------------------------------------------------------------------
FAST_CONTRACT_CLASS = "io.movesmart.spark.FastContract"
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
    return "struct<" + ", ".join(f"{_q(f.name)}: {_FAST_TYPES[f.type][1]}" for f in record.fields) + ">"


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


def route(
    df: DataFrame,
    max_message_bytes: int,
    time_rule: EventTimeRule | None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DataFrame:
    """A batch of Kafka rows of any topics (tests, tools) routed the way the streaming job
    routes them: the JVM fast path, then `reroute_exact` for the rows it left undecided."""
    register_fast_contract(df.sparkSession, time_rule)
    routed = unpack(route_fast(df, max_message_bytes))
    return with_exact(routed, reroute_exact(routed, max_message_bytes, time_rule, chunk_rows=chunk_rows))


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
    `contract.validate` on the driver, a bounded chunk at a time (see the module docstring).

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
    chunks = list(_chunk_filters(raw, chunk_rows, chunk_bytes, max_message_bytes))
    if len(chunks) <= 1:
        return route_by_reference(raw, routed.schema, max_message_bytes, time_rule)
    frames = [
        route_by_reference(raw.where(where), routed.schema, max_message_bytes, time_rule).localCheckpoint(
            eager=True
        )
        for where in chunks
    ]
    return functools.reduce(lambda a, b: a.unionByName(b), frames)


def _chunk_filters(raw: DataFrame, chunk_rows: int, chunk_bytes: int, cap: int) -> Iterator[str]:
    """SQL filters that split `raw` into chunks of at most `chunk_rows` records and about
    `chunk_bytes` bytes (a single record up to the size cap may exceed it).

    Planned from counts per bucket of consecutive offsets of one Kafka partition, the
    bucket small enough to fit a chunk alone (so the driver collects counts, not values);
    consecutive buckets then join a chunk while it has room.
    """
    from pyspark.sql import functions as F

    bucket = max(1, min(chunk_rows, chunk_bytes // max(1, cap)))
    rows = (
        raw.selectExpr(
            "topic", "partition", f"offset div {bucket} AS b", "offset", "octet_length(value) AS n"
        )
        .groupBy("topic", "partition", "b")
        .agg(F.count("*").alias("count"), F.max("offset").alias("hi"), F.sum("n").alias("bytes"))
        .toArrow()
        .to_pylist()
    )
    rows.sort(key=lambda r: (r["topic"], r["partition"], r["b"]))  # not orderBy: a sampling job
    ranges: dict[tuple[str, int], list[int]] = {}
    n_rows = n_bytes = 0
    for r in rows:
        if ranges and (n_rows + r["count"] > chunk_rows or n_bytes + r["bytes"] > chunk_bytes):
            yield _ranges_filter(ranges)
            ranges, n_rows, n_bytes = {}, 0, 0
        lo = r["b"] * bucket
        span = ranges.setdefault((r["topic"], r["partition"]), [lo, r["hi"]])
        span[1] = r["hi"]
        n_rows += r["count"]
        n_bytes += r["bytes"] or 0
    if ranges:
        yield _ranges_filter(ranges)


def _ranges_filter(ranges: dict[tuple[str, int], list[int]]) -> str:
    return " OR ".join(
        f"(topic = {_lit(t)} AND partition = {p} AND offset BETWEEN {lo} AND {hi})"
        for (t, p), (lo, hi) in ranges.items()
    )


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


def table_projection(table: str, ingested_at: datetime) -> list[str]:
    """SQL selecting one table's stored columns (and the partition column) from routed rows."""
    ingested = f"timestamp_micros({int(ingested_at.timestamp() * 1_000_000)}) AS ingested_at"
    if table == QUARANTINE_TABLE:
        cols = [ingested if n == "ingested_at" else n for n, _ in QUARANTINE_COLUMNS]
        return [*cols, PARTITION_COLUMN]
    record = RECORDS_BY_NAME[table.removesuffix("_data")]
    own = [f"`{table}__{f.name}` AS `{f.name}`" for f in record.fields]
    lineage = [ingested if n == "ingested_at" else n for n, _ in LINEAGE_COLUMNS]
    return [*own, *lineage, PARTITION_COLUMN]
