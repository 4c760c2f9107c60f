"""The data contract as Spark SQL expressions: one projection routes every Kafka record.

How the streaming job uses this module (two passes, see `route(two_pass=True)`): first the
JVM fast path (`register_fast_contract`, a Java UDF built from the same schemas) accepts
the plainly valid records in one Jackson pass, far cheaper than the expressions below;
the records it cannot vouch for get `_dest = '_exact'` and `reroute_exact` judges them,
with the Python reference on the driver when they are few, or with the SQL below.

Why not `from_json` alone: the seed's `from_json` turned anything it could not read into
an all-null row, and Spark's JSON reader is lenient (a number where a string is expected
becomes the text "12"). The rules here are the ones of the Python reference
`movesmart_dagster.contract.validate`, generated from the same `schemas.Field`s, and a
test feeds one corpus through both.

Why two parsers: a strict check needs the JSON type of every field, which Spark only
exposes through VARIANT values — and extracting typed values from variants costs about
three times a plain typed parse. So each record is parsed once with a *typed* schema
(fast path). That parse is already strict for numbers, integers and the location object
(a wrong type makes Spark flag the record as corrupt). Strings are the one lenient spot,
and a non-string token can only come back as text that looks like a JSON number,
`true`/`false`, an object or an array — such an "ambiguous" value, a corrupt record, or
anything else unusual, sends the row to the *exact* path: a second parse into VARIANT
fields whose JSON types are read with `schema_of_variant`. Valid producer data (object
`location`, ISO timestamps) stays on the fast path; seed-format rows (`location` as an
array) take the exact path and land just the same.

Both paths feed the same per-field primitives (JSON type class, string value, number
value, location parts), and one set of rules turns them into the first failing reason
in field order — `code: detail`, the same text as the reference for ordinary values.

Known, documented differences from the reference (none occur in producer data):
ISO week dates and the odd 3.11 forms (`2024-01-01T10.5`) are not accepted;
two JSON objects glued together (`{..}{..}`) pass as the first one; UTF-16/32 JSON and
UTF-8-encoded surrogates count as not_json; float details print in Java notation
below 1e-3 or from 1e7 (`1.0E7` where Python prints `10000000.0`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from movesmart_dagster.schemas import (
    LINEAGE_COLUMNS,
    LOCATION_FIELDS,
    PARTITION_COLUMN,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    RECORDS,
    RECORDS_BY_NAME,
    RECORDS_BY_TOPIC,
    Field,
    FieldType,
    RecordSchema,
)

if TYPE_CHECKING:
    from datetime import datetime

    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

CORRUPT = "_corrupt_record_"
_JSON_OPTS = {"allowSingleQuotes": "false", "columnNameOfCorruptRecord": CORRUPT, "mode": "PERMISSIVE"}

# The common ISO-8601 shape, which Spark's own cast parses exactly like Python does
# (offsets up to 17:59 — Spark's cast stops at 18h, Python at 24h).
_TS_FAST = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-7]):[0-9]{2})?$"
# Everything else Python 3.11's datetime.fromisoformat takes (minus week dates):
# YYYY-MM-DD or YYYYMMDD, any single separator, HH[:MM[:SS[.f]]] or HHMMSS, Z or ±HH[:MM[:SS[.f]]].
_TS_GENERAL = (
    r"^([0-9]{4})-?([0-9]{2})-?([0-9]{2})"
    r"(?:.([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:[.,]([0-9]+))?)?)?"
    r"(Z|([+-])([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]{1,6}))?)?)?)?)?$"
)
# A string field whose text could have come from a non-string JSON token.
# The text ends with `}` once trailing JSON whitespace is dropped. The plain endswith
# decides nearly every row; Spark's trim with a character set walks the whole string.
_ENDS_OBJECT = "(endswith(s, '}') OR endswith(trim(TRAILING ' \\t\\n\\r' FROM s), '}'))"
_NUMBER_TEXT = r"^-?[0-9][0-9.eE+-]*$"
# Python's datetime holds years 1..9999: an offset that shifts a timestamp out is invalid
_UTC_MIN_MICROS = -62135596800 * 1_000_000  # 0001-01-01T00:00:00Z
_UTC_MAX_MICROS = 253402300800 * 1_000_000 - 1  # 9999-12-31T23:59:59.999999Z


def _ambiguous(x: str) -> str:
    """A string value whose text could have come from a non-string JSON token.

    The first character decides for almost every value; the regex runs only for text that
    starts like a number (a UUID that starts with a digit fails it at its first letter).
    """
    first = f"substr({x}, 1, 1)"
    return (
        f"({first} IN ('[', '{{') OR {x} IN ('true', 'false') OR "
        f"({first} IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9') AND {x} RLIKE {_lit(_NUMBER_TEXT)}))"
    )


def _lit(text: str) -> str:
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _q(name: str) -> str:
    return f"`{name}`"


def native_schema(record: RecordSchema) -> str:
    """DDL of the fast-path parse: typed fields, timestamps as text, plus the corrupt column."""
    types = {
        FieldType.STRING: "string",
        FieldType.TIMESTAMP: "string",
        FieldType.DOUBLE: "double",
        FieldType.INT: "int",
        FieldType.LOCATION: "struct<latitude: double, longitude: double>",
    }
    cols = [f"{_q(f.name)} {types[f.type]}" for f in record.fields]
    return ", ".join([*cols, f"{CORRUPT} string"])


def variant_schema(record: RecordSchema) -> str:
    """DDL of the exact-path parse: every field as VARIANT, so its JSON type is known."""
    return ", ".join([*(f"{_q(f.name)} variant" for f in record.fields), f"{CORRUPT} string"])


_TYPE_CLASS = (
    "map('STRING', 'string', 'BOOLEAN', 'bool', 'BIGINT', 'number', 'DOUBLE', 'number', "
    "'FLOAT', 'number', 'DECIMAL', 'number', 'OBJECT', 'object', 'ARRAY', 'array', 'VOID', 'null')"
)


def _classify(v: str) -> str:
    """JSON type class of a VARIANT column: null/string/number/bool/object/array/other.

    `v` must be a column reference: it appears twice, schema_of_variant once.
    """
    head = f"substring_index(substring_index(schema_of_variant({v}), '<', 1), '(', 1)"
    return f"CASE WHEN {v} IS NULL THEN 'null' ELSE coalesce({_TYPE_CLASS}[{head}], 'other') END"


def _python_type_name(v: str) -> str:
    """What Python's `type(json.loads(..)).__name__` says for a top-level VARIANT."""
    head = f"substring_index(substring_index(schema_of_variant({v}), '<', 1), '(', 1)"
    names = "map('VOID', 'NoneType', 'STRING', 'str', 'BOOLEAN', 'bool', 'BIGINT', 'int', 'ARRAY', 'list')"
    return f"coalesce({names}[{head}], 'float')"


def _finite(d: str) -> str:
    return f"(NOT isnan({d}) AND abs({d}) != double('inf'))"


def _fmt_float(d: str) -> str:
    """Python's repr of a float for the usual magnitudes (`350.0`, `12.5`)."""
    return (
        f"CASE WHEN abs({d}) < 1e15 AND ({d} % 1) = 0 "
        f"THEN concat(cast(cast({d} AS bigint) AS string), '.0') ELSE cast({d} AS string) END"
    )


def _fmt_int(d: str) -> str:
    return f"CASE WHEN abs({d}) < 9e18 THEN cast(cast({d} AS bigint) AS string) ELSE cast({d} AS string) END"


def _range(f: Field | tuple[float | None, float | None], d: str) -> str | None:
    lo, hi = (f.minimum, f.maximum) if isinstance(f, Field) else f
    conds = []
    if lo is not None:
        conds.append(f"{d} < {lo!r}")
    if hi is not None:
        conds.append(f"{d} > {hi!r}")
    return " OR ".join(conds) if conds else None


def _int_or(e: str, default: int | None = 0) -> str:
    as_int = f"try_cast(nullif({e}, '') AS int)"
    return as_int if default is None else f"coalesce({as_int}, {default})"


class RecordRules:
    """SQL for one record type, as a list of projection stages.

    Columns carry a prefix (`vehicle__` ...), so the five record types are routed side by
    side in the same projections. Inputs: `s` (message text) and `topic`. Every stage
    reads only columns of earlier stages, so each parse and each regex runs once per row
    and the expression trees stay small (Spark plans and compiles them every batch).
    """

    def __init__(self, record: RecordSchema, prefix: str | None = None) -> None:
        self.record = record
        self.p = prefix if prefix is not None else f"{record.name}__"
        self.topic = _lit(record.topic)

    def c(self, name: str) -> str:
        """The prefixed column name, quoted."""
        return f"`{self.p}{name}`"

    def _fields(self, *types: FieldType) -> list[Field]:
        return [f for f in self.record.fields if f.type in types]

    # --- stages --------------------------------------------------------------------------
    def stages(self) -> list[dict[str, str]]:
        """[{unprefixed column: SQL}] in evaluation order."""
        c = self.c
        n, x, exact = c("n"), c("x"), c("exact")
        st: list[dict[str, str]] = []
        # 1. the typed parse (fast path) of this topic's rows
        st.append(
            {
                "n": f"CASE WHEN s IS NOT NULL THEN from_json(s, {_lit(native_schema(self.record))}, {_opts()}) END"
            }
        )
        # 2. can the typed parse decide? (not corrupt, nothing ambiguous, nothing after the object)
        amb = [_ambiguous(f"{n}.{_q(f.name)}") for f in self._fields(FieldType.STRING, FieldType.TIMESTAMP)]
        st.append(
            {
                "exact": f"(s IS NOT NULL AND ({n} IS NULL OR {n}.{CORRUPT} IS NOT NULL "
                f"OR NOT {_ENDS_OBJECT} OR {' OR '.join(amb)}))"
            }
        )
        # 3. the variant parse, only for rows that need it
        st.append(
            {"x": f"CASE WHEN {exact} THEN from_json(s, {_lit(variant_schema(self.record))}, {_opts()}) END"}
        )
        # 4. per field: the raw variant (exact rows) or the typed value
        s4: dict[str, str] = {}
        for f in self.record.fields:
            s4[f"v__{f.name}"] = f"CASE WHEN {exact} THEN {x}.{_q(f.name)} END"
        st.append(s4)
        # 5. type class and plain values
        s5: dict[str, str] = {}
        fast_class = {
            FieldType.STRING: "string",
            FieldType.TIMESTAMP: "string",
            FieldType.DOUBLE: "number",
            FieldType.INT: "number",
            FieldType.LOCATION: "object",
        }
        for f in self.record.fields:
            v, nv = c(f"v__{f.name}"), f"{n}.{_q(f.name)}"
            s5[f"t__{f.name}"] = (
                f"CASE WHEN {exact} THEN {_classify(v)} WHEN {nv} IS NULL THEN 'null' ELSE '{fast_class[f.type]}' END"
            )
            if f.type in (FieldType.STRING, FieldType.TIMESTAMP):
                s5[f"s__{f.name}"] = (
                    f"CASE WHEN {exact} THEN try_variant_get({v}, '$', 'string') ELSE {nv} END"
                )
            elif f.type in (FieldType.DOUBLE, FieldType.INT):
                s5[f"d__{f.name}"] = (
                    f"CASE WHEN {exact} THEN try_variant_get({v}, '$', 'double') ELSE cast({nv} AS double) END"
                )
        st.append(s5)
        # 6. location parts (object members or array items); timestamp shapes
        s6: dict[str, str] = {}
        for f in self._fields(FieldType.LOCATION):
            v, t = c(f"v__{f.name}"), c(f"t__{f.name}")
            for i, part in enumerate(("latitude", "longitude")):
                s6[f"lv__{f.name}__{part}"] = (
                    f"CASE WHEN {t} = 'array' THEN variant_get({v}, '$[{i}]') "
                    f"WHEN {exact} AND {t} = 'object' THEN variant_get({v}, '$.{part}') END"
                )
            s6[f"ln__{f.name}"] = (
                f"CASE WHEN {t} = 'array' THEN size(try_variant_get({v}, '$', 'array<variant>')) END"
            )
        for f in self._fields(FieldType.TIMESTAMP):
            sv = c(f"s__{f.name}")
            s6[f"tsf__{f.name}"] = f"({sv} RLIKE {_lit(_TS_FAST)} AND substr({sv}, 1, 4) != '0000')"
            groups = ", ".join(f"regexp_extract({sv}, {_lit(_TS_GENERAL)}, {i})" for i in range(1, 14))
            s6[f"tsg__{f.name}"] = (
                f"CASE WHEN NOT ({sv} RLIKE {_lit(_TS_FAST)}) AND {sv} RLIKE {_lit(_TS_GENERAL)} THEN array({groups}) END"
            )
        st.append(s6)
        # 7. location part classes and numbers; timestamp pieces
        s7: dict[str, str] = {}
        for f in self._fields(FieldType.LOCATION):
            nv = f"{n}.{_q(f.name)}"
            for part in ("latitude", "longitude"):
                lv = c(f"lv__{f.name}__{part}")
                s7[f"lt__{f.name}__{part}"] = (
                    f"CASE WHEN {exact} THEN {_classify(lv)} WHEN {nv}.{part} IS NULL THEN 'null' ELSE 'number' END"
                )
                s7[f"ld__{f.name}__{part}"] = (
                    f"CASE WHEN {exact} THEN try_variant_get({lv}, '$', 'double') ELSE {nv}.{part} END"
                )
        for f in self._fields(FieldType.TIMESTAMP):
            sv, g = c(f"s__{f.name}"), c(f"tsg__{f.name}")
            gi = [f"{g}[{i}]" for i in range(13)]  # groups 1..13 at 0..12
            sec = f"try_cast(concat({_int_or(gi[5])}, '.', rpad(substr({gi[6]}, 1, 6), 6, '0')) AS decimal(8,6))"
            s7[f"tsl__{f.name}"] = (
                f"CASE WHEN {g} IS NOT NULL AND {_int_or(gi[0])} >= 1 AND {_int_or(gi[3])} < 24 "
                f"AND {_int_or(gi[4])} < 60 AND {_int_or(gi[5])} < 60 THEN try_make_timestamp("
                f"{_int_or(gi[0], None)}, {_int_or(gi[1], None)}, {_int_or(gi[2], None)}, "
                f"{_int_or(gi[3])}, {_int_or(gi[4])}, {sec}, 'UTC') END"
            )
            s7[f"tso__{f.name}"] = (
                f"CASE WHEN {g} IS NOT NULL THEN (CASE WHEN {gi[8]} = '-' THEN -1 ELSE 1 END) * "
                f"(cast({_int_or(gi[9])} AS bigint) * 3600000000 + cast({_int_or(gi[10])} AS bigint) * 60000000 "
                f"+ cast({_int_or(gi[11])} AS bigint) * 1000000 "
                f"+ cast(coalesce(try_cast(rpad({gi[12]}, 6, '0') AS int), 0) AS bigint)) END"
            )
            s7[f"tsc__{f.name}"] = f"CASE WHEN {c('tsf__' + f.name)} THEN try_cast({sv} AS timestamp) END"
        st.append(s7)
        # 8. final timestamps
        s8: dict[str, str] = {}
        for f in self._fields(FieldType.TIMESTAMP):
            local, off = c(f"tsl__{f.name}"), c(f"tso__{f.name}")
            ts = (
                f"coalesce({c('tsc__' + f.name)}, CASE WHEN {local} IS NOT NULL AND abs({off}) < 86400000000 "
                f"THEN timestamp_micros(unix_micros({local}) - {off}) END)"
            )
            s8[f"ts__{f.name}"] = (
                f"CASE WHEN unix_micros({ts}) BETWEEN {_UTC_MIN_MICROS} AND {_UTC_MAX_MICROS} THEN {ts} END"
            )
        st.append(s8)
        # 9. the verdict
        st.append({"reason": self.reason()})
        return st

    # --- rules ---------------------------------------------------------------------------
    def field_reason(self, f: Field) -> str:
        """NULL when the field is fine, else `code: detail` (the reference's wording)."""
        name, c = f.name, self.c
        t = c(f"t__{name}")
        missing = f"'missing_required: {name}'" if f.required else "NULL"
        match f.type:
            case FieldType.STRING:
                return f"CASE WHEN {t} = 'null' THEN {missing} WHEN {t} != 'string' THEN 'wrong_type: {name} must be a string' END"
            case FieldType.TIMESTAMP:
                return (
                    f"CASE WHEN {t} = 'null' THEN {missing} "
                    f"WHEN {t} != 'string' THEN 'wrong_type: {name} must be an ISO-8601 string' "
                    f"WHEN {c('ts__' + name)} IS NULL THEN concat('bad_timestamp: {name}=\\'', "
                    f"substr({c('s__' + name)}, 1, 40), '\\' is not ISO-8601') END"
                )
            case FieldType.DOUBLE | FieldType.INT:
                d = c(f"d__{name}")
                is_int = f.type is FieldType.INT
                bad_type = f"{t} != 'number' OR NOT {_finite(d)}" + (f" OR ({d} % 1) != 0" if is_int else "")
                kind = "an integer" if is_int else "a number"
                rng = _range(f, d)
                out = f"CASE WHEN {t} = 'null' THEN {missing} WHEN {bad_type} THEN 'wrong_type: {name} must be {kind}' "
                if rng:
                    shown = _fmt_int(d) if is_int else _fmt_float(d)
                    out += f"WHEN {rng} THEN concat('out_of_range: {name}=', {shown}, ' not in [{f.minimum}, {f.maximum}]') "
                return out + "END"
            case FieldType.LOCATION:
                lat_t, lon_t = c(f"lt__{name}__latitude"), c(f"lt__{name}__longitude")
                lat, lon = c(f"ld__{name}__latitude"), c(f"ld__{name}__longitude")
                nums = f"({lat_t} = 'number' AND {lon_t} = 'number' AND {_finite(lat)} AND {_finite(lon)})"
                out = (
                    f"CASE WHEN {t} = 'null' THEN {missing} "
                    f"WHEN {t} = 'array' AND ({c('ln__' + name)} != 2 OR NOT {nums}) "
                    "THEN 'wrong_type: location must be [latitude, longitude] numbers' "
                    f"WHEN {t} = 'object' AND NOT {nums} THEN 'wrong_type: location.latitude/longitude must be numbers' "
                    f"WHEN {t} NOT IN ('array', 'object') THEN 'wrong_type: location must be an object or [lat, lon] array' "
                )
                for lf, d in zip(LOCATION_FIELDS, (lat, lon), strict=True):
                    out += (
                        f"WHEN {_range(lf, d)} THEN concat('out_of_range: location.{lf.name}=', {_fmt_float(d)}, "
                        f"' not in [{lf.minimum}, {lf.maximum}]') "
                    )
                return out + "END"
        raise ValueError(f.type)

    def document_reason(self) -> str:
        """Reasons about the message as a whole (JSON, object), before any field."""
        n, x, exact = self.c("n"), self.c("x"), self.c("exact")
        not_json = "'not_json: value is not UTF-8 JSON'"
        return (
            f"CASE WHEN {n} IS NULL OR ({exact} AND {x} IS NULL) THEN {not_json} "
            f"WHEN {exact} AND {x}.{CORRUPT} IS NOT NULL THEN "
            "(CASE WHEN try_parse_json(s) IS NOT NULL AND NOT startswith(trim(LEADING ' \\t\\n\\r' FROM s), '{') "
            f"THEN concat('not_object: JSON ', {_python_type_name('try_parse_json(s)')}, ' instead of an object') "
            f"ELSE {not_json} END) "
            f"WHEN NOT {_ENDS_OBJECT} THEN {not_json} END"
        )

    def reason(self) -> str:
        """The first failing rule for a row of this record's topic (NULL when valid)."""
        parts = [self.document_reason(), *(self.field_reason(f) for f in self.record.fields)]
        return f"CASE WHEN s IS NOT NULL THEN coalesce({', '.join(parts)}) END"

    def value_columns(self) -> list[tuple[str, str]]:
        """(field, SQL) of the record's typed output columns, in schema order."""
        c = self.c
        cols = []
        for f in self.record.fields:
            match f.type:
                case FieldType.STRING:
                    expr = c(f"s__{f.name}")
                case FieldType.TIMESTAMP:
                    expr = c(f"ts__{f.name}")
                case FieldType.DOUBLE:
                    expr = c(f"d__{f.name}")
                case FieldType.INT:
                    expr = f"cast({c('d__' + f.name)} AS int)"
                case FieldType.LOCATION:
                    expr = (
                        f"CASE WHEN {c('t__' + f.name)} = 'null' THEN NULL ELSE named_struct("
                        f"'latitude', {c(f'ld__{f.name}__latitude')}, 'longitude', {c(f'ld__{f.name}__longitude')}) END"
                    )
            cols.append((f.name, expr))
        return cols

    def event_time_column(self) -> str:
        return self.c("ts__" + self.record.event_time_field)


def _opts() -> str:
    return "map(" + ", ".join(f"{_lit(k)}, {_lit(v)}" for k, v in _JSON_OPTS.items()) + ")"


# --- whole frames ------------------------------------------------------------------------
RULES: dict[str, RecordRules] = {r.topic: RecordRules(r, prefix="") for r in RECORDS}
EXACT_DEST = "_exact"  # `_dest` of rows the fast pass leaves to the exact path


def route_topic(df: DataFrame, topic: str, max_message_bytes: int) -> DataFrame:
    """One topic's Kafka rows (topic, partition, offset, timestamp, value) -> one routed row each,
    by the exact rules (one pass; the streaming job's second pass, see `route_fast`).

    Output: `_dest` (the table, or `quarantine`), `reason`, the lineage columns,
    `raw_value` (quarantined rows only), `event_ts`, `event_date` and `<table>__<field>`
    for this topic's table. Each stage is its own projection so the parses run once per
    row (Spark does not inline a non-trivial expression referenced more than once); one
    topic per frame keeps the projection narrow enough for whole-stage code generation.
    """
    rules = RULES[topic]
    cap = int(max_message_bytes)
    table = rules.record.table
    event_ts = rules.event_time_column()
    # All stages as one SQL statement of nested SELECTs over a view of the source: Spark
    # parses and analyzes it once (a DataFrame per stage would re-analyze the growing
    # plan 45 times, seconds of start-up).
    view = f"__movesmart_exact_{topic}"
    df.createOrReplaceTempView(view)
    pre = _pre_checks(view, cap, refuse_bom=True)
    sql = f"SELECT *, CASE WHEN pre_reason IS NULL THEN cast(value AS string) END AS s FROM ({pre})"
    for stage in rules.stages():
        cols = ", ".join(f"{expr} AS {rules.c(name)}" for name, expr in stage.items())
        sql = f"SELECT *, {cols} FROM ({sql})"
    sql = f"SELECT *, coalesce(pre_reason, {rules.c('reason')}) AS _reason FROM ({sql})"
    values = [
        f"CASE WHEN _reason IS NULL THEN {expr} END AS `{table}__{name}`"
        for name, expr in rules.value_columns()
    ]
    routed = _routed_select(
        _lit(topic),
        sql,
        dest=f"CASE WHEN _reason IS NULL THEN {_lit(table)} ELSE {_lit(QUARANTINE_TABLE)} END",
        reason="_reason",
        raw_value="CASE WHEN _reason IS NOT NULL THEN value END",
        event_ts=f"CASE WHEN _reason IS NULL THEN {event_ts} END",
        valid="_reason IS NULL",
        values=values,
    )
    return df.sparkSession.sql(routed)


def _pre_checks(view: str, cap: int, refuse_bom: bool) -> str:
    """The Kafka columns renamed, and the verdicts that need no parse (null, size, UTF-8).

    refuse_bom: Python's json.loads refuses a leading BOM, Spark's JSON reader skips it, so
    the exact path checks it here; the fast path leaves such records undecided itself.
    """
    bom = (
        "WHEN substr(value, 1, 3) = X'EFBBBF' THEN 'not_json: value is not UTF-8 JSON' " if refuse_bom else ""
    )
    return (
        "SELECT topic, partition AS kafka_partition, offset AS kafka_offset, timestamp AS kafka_timestamp, value, "
        "CASE WHEN value IS NULL THEN 'not_json: value is null (tombstone)' "
        f"WHEN octet_length(value) > {cap} THEN concat('oversized: ', octet_length(value), ' bytes > cap {cap}') "
        f"WHEN NOT is_valid_utf8(value) THEN 'not_json: value is not UTF-8 JSON' {bom}END AS pre_reason "
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
    first of two passes; `register_fast_contract` must have run).

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
        f"CASE WHEN pre_reason IS NULL AND _t = {index[r.topic]} THEN {fast_udf_name(r.topic)}(value) END "
        f"AS {packed[r.topic]}"
        for r in RECORDS
    )
    sql = f"SELECT *, {topic_index} AS _t FROM ({_pre_checks(view, cap, refuse_bom=False)})"
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


def fast_contract_spec(record: RecordSchema) -> str:
    """The record as the JVM fast path reads it (JSON): the schemas module stays the source."""
    import json

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
        }
    )


def fast_return_ddl(record: RecordSchema) -> str:
    return "struct<" + ", ".join(f"{_q(f.name)}: {_FAST_TYPES[f.type][1]}" for f in record.fields) + ">"


def register_fast_contract(spark: SparkSession) -> None:
    """Register `movesmart_fast_<topic>` (a Java UDF from .jars/spark) for every record."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    for record in RECORDS:
        try:
            udf = functools.reduce(getattr, FAST_CONTRACT_CLASS.split("."), jvm)(fast_contract_spec(record))
        except TypeError as err:  # py4j: the class is not on the classpath
            raise RuntimeError(
                f"{FAST_CONTRACT_CLASS} is not on Spark's classpath (movesmart-spark-contract.jar): run `make setup`"
            ) from err
        return_type = jvm.org.apache.spark.sql.types.DataType.fromDDL(fast_return_ddl(record))
        spark._jsparkSession.udf().register(fast_udf_name(record.topic), udf, return_type)  # type: ignore[attr-defined]


def union_routed(frames: list[DataFrame]) -> DataFrame:
    """The routed frames of several topics as one frame (other tables' columns NULL)."""
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f, allowMissingColumns=True)
    return out


def route(
    df: DataFrame, max_message_bytes: int, two_pass: bool = False, by_reference: bool = False
) -> DataFrame:
    """A batch of mixed topics (tests, tools): each topic's rows routed by its own rules.

    two_pass=True routes the way the streaming job does: the JVM fast path, then
    `reroute_exact` for the rows it left undecided. All forms give the same rows.
    """
    if not two_pass:
        return union_routed([route_topic(df.where(df.topic == t), t, max_message_bytes) for t in RULES])
    register_fast_contract(df.sparkSession)
    routed = unpack(route_fast(df, max_message_bytes))
    return with_exact(routed, reroute_exact(routed, max_message_bytes, by_reference=by_reference))


def with_exact(routed: DataFrame, exact: DataFrame) -> DataFrame:
    """A fast pass's decided rows together with the exact path's verdicts on the rest."""
    return routed.where(routed._dest != EXACT_DEST).unionByName(exact, allowMissingColumns=True)


def reroute_exact(routed: DataFrame, max_message_bytes: int, by_reference: bool = False) -> DataFrame:
    """The rows a fast pass left undecided (`_dest = '_exact'`), routed by the exact rules.

    by_reference: judge them on the driver with `contract.validate` itself, which costs
    far less than planning the exact SQL when they are few (the usual case: the odd and
    the broken records; the job's limit is `MOVESMART_DRIVER_VALIDATION_MAX_ROWS`); many
    (a whole stream in an unusual dialect) go through that SQL on the executors.
    """
    raw = routed.where(routed._dest == EXACT_DEST).selectExpr(
        "kafka_topic AS topic",
        "kafka_partition AS partition",
        "kafka_offset AS offset",
        "kafka_timestamp AS timestamp",
        "raw_value AS value",
    )
    if by_reference:
        return route_by_reference(raw, routed.schema, max_message_bytes)
    return route(raw, max_message_bytes)


def route_by_reference(raw: DataFrame, schema: StructType, max_message_bytes: int) -> DataFrame:
    """Kafka rows routed by the Python reference on the driver, as rows of `schema`.

    The rows go back to Spark as an Arrow table, which the JVM reads directly: no Python
    worker process is started (executors need no Python for this), and timestamps travel
    as UTC microseconds, never through the machine's local time zone.
    """
    from datetime import UTC, timedelta
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
        verdict = validate(record, value, max_bytes=max_message_bytes)
        kafka_ts = epoch + timedelta(microseconds=ts)
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
    table = pa.Table.from_pydict(columns, schema=to_arrow_schema(schema, timezone="UTC"))
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
