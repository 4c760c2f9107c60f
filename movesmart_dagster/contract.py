"""The data contract: which payloads are valid records, derived from `schemas`.

This is the reference implementation of the rules, in plain Python. The streaming job
applies the same rules as Spark expressions (built from the same `Field`s), and a test
feeds one corpus of payloads through both to prove they agree.

Accepted on the wire (what the seed's producers send):
- a UTF-8 JSON object; unknown extra fields are ignored;
- `location` as an object `{"latitude": .., "longitude": ..}` or an array `[lat, lon]`;
- timestamps as ISO-8601 text with or without offset (naive means UTC);
- free text for descriptive strings (`weatherCondition` may be `Sunny` or `clear sky`).

Rejected, with a reason `<code>: <detail>`:
- `not_json`          bytes that are not UTF-8 JSON, or no value at all (a tombstone)
- `not_object`        JSON that is not an object
- `missing_required`  a required field (`id`, `deviceId`, `timestamp`) absent or null
- `wrong_type`        e.g. a string where a number is expected (a bool is not a number),
                      or a string holding a lone surrogate (`"\\ud800"`: valid JSON
                      syntax, but not Unicode text, so no table could store it)
- `bad_timestamp`     text that is not an ISO-8601 timestamp
- `out_of_range`      latitude -90..90, longitude -180..180, speed 0..300, humidity 0..100, ...;
                      and, given an `EventTimeRule`, an event time before the start date
                      (MOVESMART_START_DATE) or more than MOVESMART_MAX_FUTURE_SKEW ahead of
                      the record's ingestion time
- `oversized`         payload larger than the configured cap (checked by the job)

The ingestion time is the Kafka record's timestamp, what the streaming job sees of every
record (the producer's send time under the topics' default CreateTime, the broker's append
time under LogAppendTime): deterministic on a re-run, unlike the clock of the batch that
happens to judge the record. Why the time rule: every table day must be a partition of the one
daily partitions definition (which starts at MOVESMART_START_DATE), and a clock far ahead
would otherwise open partitions for days that have not happened.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from movesmart_dagster.schemas import LOCATION_FIELDS, Field, FieldType, RecordSchema

if TYPE_CHECKING:
    from movesmart_dagster.settings import Settings

NOT_JSON = "not_json: value is not UTF-8 JSON"
TOMBSTONE = "not_json: value is null (tombstone)"

REASON_CODES = (
    "not_json",
    "not_object",
    "missing_required",
    "wrong_type",
    "bad_timestamp",
    "out_of_range",
    "oversized",
)


@dataclass(frozen=True)
class EventTimeRule:
    """The accepted event times: from `start` (inclusive) to `max_future_skew` past the
    record's ingestion time (inclusive)."""

    start: datetime  # aware, UTC
    max_future_skew: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> EventTimeRule:
        return cls(settings.start_time, settings.max_future_skew)

    @property
    def skew_text(self) -> str:
        """The skew as its setting is written (ISO 8601: P1D, PT6H)."""
        from pydantic import TypeAdapter

        return str(TypeAdapter(timedelta).dump_python(self.max_future_skew, mode="json"))

    def latest(self, ingested_at: datetime) -> datetime | None:
        """The latest accepted event time; None when it lies beyond what a datetime holds."""
        try:
            return ingested_at + self.max_future_skew
        except OverflowError:
            return None

    def check(self, name: str, ts: datetime, ingested_at: datetime) -> str | None:
        """The reason an event time `ts` (aware) is out of range, or None."""
        if ts < self.start:
            return f"out_of_range: {name}={ts.isoformat()} is before the start date {self.start.date().isoformat()}"
        latest = self.latest(ingested_at)
        if latest is not None and ts > latest:
            return (
                f"out_of_range: {name}={ts.isoformat()} is more than {self.skew_text} ahead of "
                f"its ingestion at {ingested_at.astimezone(UTC).isoformat()}"
            )
        return None


@dataclass(frozen=True)
class Verdict:
    row: dict[str, Any] | None
    reason: str | None

    @property
    def valid(self) -> bool:
        return self.reason is None

    @property
    def code(self) -> str | None:
        return self.reason.split(":", 1)[0] if self.reason else None


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # a JSON integer too large for a double
        return False


def parse_timestamp(text: str) -> datetime | None:
    """ISO-8601 with or without offset; naive is UTC. None if not a timestamp."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        return None


def _has_lone_surrogate(text: str) -> bool:
    """json.loads turns `"\\ud800"` into a str that has no UTF-8 form (pairs are joined)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _in_range(f: Field, v: float) -> bool:
    return (f.minimum is None or v >= f.minimum) and (f.maximum is None or v <= f.maximum)


def _location(value: Any) -> tuple[dict[str, float] | None, str | None]:
    if isinstance(value, list | tuple):
        if len(value) != 2 or not all(_is_number(x) for x in value):
            return None, "wrong_type: location must be [latitude, longitude] numbers"
        lat, lon = float(value[0]), float(value[1])
    elif isinstance(value, dict):
        lat, lon = value.get("latitude"), value.get("longitude")
        if not (_is_number(lat) and _is_number(lon)):
            return None, "wrong_type: location.latitude/longitude must be numbers"
        lat, lon = float(lat), float(lon)
    else:
        return None, "wrong_type: location must be an object or [lat, lon] array"
    loc = {"latitude": lat, "longitude": lon}
    for f in LOCATION_FIELDS:
        if not _in_range(f, loc[f.name]):
            return None, f"out_of_range: location.{f.name}={loc[f.name]} not in [{f.minimum}, {f.maximum}]"
    return loc, None


def check_value(f: Field, value: Any) -> tuple[Any, str | None]:
    """Normalize one present, non-null value or say why it is invalid."""
    match f.type:
        case FieldType.STRING:
            if not isinstance(value, str):
                return None, f"wrong_type: {f.name} must be a string"
            if not value.isascii() and _has_lone_surrogate(value):
                return None, f"wrong_type: {f.name} must be Unicode text (it holds a lone surrogate)"
            return value, None
        case FieldType.DOUBLE:
            if not _is_number(value):
                return None, f"wrong_type: {f.name} must be a number"
            value = float(value)
        case FieldType.INT:
            if not (_is_number(value) and float(value).is_integer()):
                return None, f"wrong_type: {f.name} must be an integer"
            value = int(value)
        case FieldType.TIMESTAMP:
            if not isinstance(value, str):
                return None, f"wrong_type: {f.name} must be an ISO-8601 string"
            ts = parse_timestamp(value)
            if ts is None:
                return None, f"bad_timestamp: {f.name}={value[:40]!r} is not ISO-8601"
            return ts, None
        case FieldType.LOCATION:
            return _location(value)
    if not _in_range(f, value):
        return None, f"out_of_range: {f.name}={value} not in [{f.minimum}, {f.maximum}]"
    return value, None


def validate(
    record: RecordSchema,
    payload: bytes | str | None,
    max_bytes: int | None = None,
    time_rule: EventTimeRule | None = None,
    ingested_at: datetime | None = None,
) -> Verdict:
    """Apply the contract to one Kafka value; the row holds only the record's fields.

    `max_bytes` is the job's size cap (None: no cap); None is a Kafka tombstone.
    `time_rule` bounds the event time (None: any time) against `ingested_at`, the Kafka
    record's timestamp (required with a rule). Never raises on a payload: every input,
    however broken, gets a verdict.
    """
    if time_rule is not None and ingested_at is None:
        raise TypeError("validate: a time_rule needs the record's ingested_at (its Kafka timestamp)")
    if payload is None:
        return Verdict(None, TOMBSTONE)
    if max_bytes is not None:
        size = (
            len(payload)
            if isinstance(payload, bytes | bytearray)
            else len(payload.encode("utf-8", "surrogatepass"))
        )
        if size > max_bytes:
            return Verdict(None, f"oversized: {size} bytes > cap {max_bytes}")
    try:
        # decode explicitly: json.loads(bytes) would also accept UTF-16/32, which is not the contract
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return Verdict(None, NOT_JSON)
    if not isinstance(doc, dict):
        return Verdict(None, f"not_object: JSON {type(doc).__name__} instead of an object")
    row: dict[str, Any] = {}
    for f in record.fields:
        value = doc.get(f.name)
        if value is None:
            if f.required:
                return Verdict(None, f"missing_required: {f.name}")
            row[f.name] = None
            continue
        normalized, reason = check_value(f, value)
        if reason:
            return Verdict(None, reason)
        row[f.name] = normalized
    if time_rule is not None:
        assert ingested_at is not None
        name = record.event_time_field
        reason = time_rule.check(name, row[name], ingested_at)
        if reason:
            return Verdict(None, reason)
    return Verdict(row, None)
