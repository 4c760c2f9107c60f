"""Progress of the streaming job, as the orchestrator consumes it.

Why a file: the job commits micro-batches in a Spark driver that Dagster does not own
in-process. Each committed batch appends one JSON line to an append-only log; readers
(the Dagster run that supervises the job, the `movesmart` CLI, tests) tail it with a
byte-offset cursor. A line is written only after the batch's files are final, so a
line never announces data a reader could not see. (Why not Dagster Pipes messages:
`defs/streaming/process.py`.)

One line per committed batch:
    {"batch_id": 7, "committed_at": "...Z", "duration_ms": 812,
     "tables": {"vehicle_data": {"rows": 1200, "quarantined": 3,
                                 "offsets": {"0": [100, 1300]},  # partition -> [start, end)
                                 "newest_event_at": "...Z", "newest_kafka_at": "...Z",
                                 "freshness_lag_s": 1.7,
                                 "partitions": ["2024-01-01"]},
                "quarantine": {"rows": 12, ...}}}

Fields added later (readers must tolerate their absence and unknown keys):
- batch: `query_id` (the checkpoint's query; batch ids restart with a new checkpoint),
  `started_at`, `input_rows` (Kafka records in the batch).
- table: `event_lag_s` (now - newest event time; `freshness_lag_s` is now - newest Kafka
  timestamp, which is meaningful also for simulated past event times), `files` (Parquet
  files added), `days`: per `event_date` partition the batch wrote, its rows, newest event
  time (quarantine: newest Kafka timestamp, its partitions' time) and Kafka offset ranges
  (topic -> partition -> [first, last + 1) of that day's rows) — what Dagster's per-partition
  materializations are folded from.

A batch is reported once per query in the normal case; if the job dies after the line is
written but before Spark records the commit, the re-run batch (same `query_id` and
`batch_id`, the same rows) is not reported again — the job checks the log's last line.

Rotation (bounded size): before an append would take the log past `max_bytes`
(MOVESMART_PROGRESS_LOG_MAX_BYTES, 32 MiB), the log is renamed to `<log>.1` (replacing the
previous one) and the new log starts with a *carry* line, `{"carry": {"committed": {topic:
{partition: end}}}}`: the committed end offsets folded over everything before, so that a
reader of the two files still knows the offsets of a partition that had no batch in them
(the lag would otherwise count that partition whole). Readers skip carry lines except
`ProgressState`, which folds them. The two files hold at most 2 x `max_bytes`. A reader that
tails with `follow` (byte cursor + the file's inode) finishes the rotated file before it
starts on the new one, so no batch is lost or read twice across a rotation; `iter_all` reads
`<log>.1` then the log, `last` falls back to `<log>.1` when the log holds no batch yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DayProgress:
    rows: int = 0
    newest_event_at: str | None = None
    offsets: dict[str, dict[str, list[int]]] = field(
        default_factory=dict
    )  # topic -> partition -> [start, end)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DayProgress:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TableProgress:
    rows: int = 0
    quarantined: int = 0  # rows of this table's topic that went to quarantine
    offsets: dict[str, list[int]] = field(default_factory=dict)  # partition -> [start, end)
    newest_event_at: str | None = None
    newest_kafka_at: str | None = None
    freshness_lag_s: float | None = None
    partitions: list[str] = field(default_factory=list)  # event_date values touched
    event_lag_s: float | None = None  # now - newest event time
    files: int = 0  # data files the batch's Iceberg append added
    days: dict[str, DayProgress] = field(default_factory=dict)  # event_date -> what the batch added

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableProgress:
        known = {f for f in cls.__dataclass_fields__}
        out = cls(**{k: v for k, v in d.items() if k in known and k != "days"})
        out.days = {day: DayProgress.from_dict(v) for day, v in (d.get("days") or {}).items()}
        return out


@dataclass
class BatchProgress:
    batch_id: int
    committed_at: str
    duration_ms: int
    tables: dict[str, TableProgress]
    query_id: str | None = None
    started_at: str | None = None
    input_rows: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchProgress:
        return cls(
            batch_id=int(d["batch_id"]),
            committed_at=d["committed_at"],
            duration_ms=int(d["duration_ms"]),
            tables={k: TableProgress.from_dict(v) for k, v in d["tables"].items()},
            query_id=d.get("query_id"),
            started_at=d.get("started_at"),
            input_rows=d.get("input_rows"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_MAX_BYTES = 32 << 20  # MOVESMART_PROGRESS_LOG_MAX_BYTES
CARRY = "carry"  # the key of a rotated log's first line


def rotated_path(log_path: Path) -> Path:
    """Where the log goes when it is rotated (one generation is kept)."""
    return log_path.with_name(log_path.name + ".1")


def append(log_path: Path, progress: BatchProgress, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Append one line in a single write call (one writer; readers skip a partial last line).

    When the line would take the log past `max_bytes` (0: never), the log first becomes
    `<log>.1` and the line goes to a new log after a carry line (see the module's docstring).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    line = (progress.to_json() + "\n").encode()
    if max_bytes and log_path.exists():
        size = log_path.stat().st_size
        if size and size + len(line) > max_bytes:
            carry = json.dumps({CARRY: {"committed": committed_in(log_path)}}, separators=(",", ":"))
            os.replace(log_path, rotated_path(log_path))
            line = (carry + "\n").encode() + line  # one write: a new log never lacks its carry line
    with open(log_path, "ab") as fh:
        fh.write(line)
        fh.flush()


def fold_committed(committed: dict[str, dict[str, int]], record: dict[str, Any]) -> None:
    """Fold one line (a batch or a carry) into topic -> partition -> committed end offset."""
    from movesmart_dagster.schemas import TOPICS

    if CARRY in record:
        for topic, parts in (record[CARRY].get("committed") or {}).items():
            mine = committed.setdefault(topic, {})
            for partition, end in parts.items():
                mine[str(partition)] = max(int(end), mine.get(str(partition), 0))
        return
    for table, tp in (record.get("tables") or {}).items():
        if table not in TOPICS:
            continue  # quarantine mixes topics; the record tables carry each topic's range
        mine = committed.setdefault(table, {})
        for partition, (_start, end) in (tp.get("offsets") or {}).items():
            mine[str(partition)] = max(int(end), mine.get(str(partition), 0))


def committed_in(log_path: Path) -> dict[str, dict[str, int]]:
    """The committed end offsets folded over one file (its carry line included)."""
    committed: dict[str, dict[str, int]] = {}
    for record in (_records(log_path, 0) or ([], 0))[0]:
        fold_committed(committed, record)
    return committed


def _lines(fh: Any, cursor: int) -> tuple[list[dict[str, Any]], int]:
    """The complete lines of an open file after byte `cursor`, parsed; and the cursor after them."""
    fh.seek(cursor)
    data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], cursor
    return [json.loads(line) for line in data[: end + 1].splitlines() if line.strip()], cursor + end + 1


def _records(path: Path, cursor: int, inode_is: Any = None) -> tuple[list[dict[str, Any]], int] | None:
    """The complete lines of `path` after byte `cursor`, parsed, and the cursor after them; None
    if it is missing or if its inode fails the `inode_is` test."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with fh:
        if inode_is is not None and not inode_is(os.fstat(fh.fileno()).st_ino):
            return None
        return _lines(fh, cursor)


def _at_line_start(fh: Any, cursor: int) -> bool:
    """Whether `cursor` is where a line of the open file starts (a reader's cursor always is)."""
    if cursor == 0:
        return True
    fh.seek(cursor - 1)
    return fh.read(1) == b"\n"


def follow(
    log_path: Path, cursor: int = 0, inode: int | None = None
) -> tuple[list[dict[str, Any]], int, int | None, bool]:
    """Tail the log across rotations: the lines (batches and carry lines, parsed) after `cursor`
    in the file `inode`, then those of any newer file; returns them, the new cursor and inode,
    and whether the reader had to start over (its file is gone: the log was replaced, or more
    than one rotation happened since; the lines then are all that the two files hold).

    `inode=None` with `cursor=0` is a new reader: it reads `<log>.1` first. `inode=None` with a
    cursor (a cursor saved before rotation existed) means the current log. Each file is read
    through one open descriptor whose inode is checked, so a rotation while it reads changes
    nothing: what it read of the log it finds in `<log>.1` at its next call.
    """
    try:
        fh = open(log_path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        # no log yet, or between the rename of a rotation and the first write of the new log
        return [], cursor, inode, False
    with fh:
        current = os.fstat(fh.fileno()).st_ino
        old = rotated_path(log_path)

        def whole_rotated_file() -> list[dict[str, Any]]:
            found = _records(old, 0, lambda ino: ino != current)  # (not the log, renamed meanwhile)
            return found[0] if found else []

        out: list[dict[str, Any]] = []
        restarted = False
        if inode is None:
            if cursor == 0:
                out += whole_rotated_file()  # a new reader: the older file first
            inode = current  # (a cursor from before rotation existed points into the log)
        if inode != current:
            rest = _records(old, cursor, lambda ino: ino == inode)
            if rest is not None:
                out += rest[0]  # the rest of the reader's file, rotated (its writer moved on)
            else:
                restarted = True  # its file is gone: more than one rotation, or a replaced log
                out += whole_rotated_file()
            cursor = 0
        elif not _at_line_start(fh, cursor):  # the same inode, but truncated, or a new file
            restarted = True  # that reuses the inode number of the reader's (long gone) file
            out += whole_rotated_file()
            cursor = 0
        records, cursor = _lines(fh, cursor)
        return out + records, cursor, current, restarted


def read_since(log_path: Path, cursor: int = 0) -> tuple[list[BatchProgress], int]:
    """Complete batch lines of the log (not of `<log>.1`) after byte `cursor`; returns them and
    the new cursor. A partial last line (writer mid-append) is left for the next call; a tail
    that must survive rotations uses `follow`.
    """
    records, cursor = _records(log_path, cursor) or ([], cursor)
    return [BatchProgress.from_dict(r) for r in records if CARRY not in r], cursor


def iter_all(log_path: Path) -> Iterator[BatchProgress]:
    """Every batch the log and its rotated `<log>.1` hold, oldest first."""
    for record in follow(log_path)[0]:
        if CARRY not in record:
            yield BatchProgress.from_dict(record)


def last(log_path: Path, max_bytes: int = 1 << 20) -> BatchProgress | None:
    """The last complete batch line of the log (reads only its tail), else of `<log>.1`."""
    for path in (log_path, rotated_path(log_path)):
        found = _last_in(path, max_bytes)
        if found is not None:
            return found
    return None


def _last_in(path: Path, max_bytes: int) -> BatchProgress | None:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read()
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not data.endswith(b"\n") and lines:
        lines = lines[:-1]  # a partial last line
    for line in reversed(lines):
        try:
            return BatchProgress.from_dict(json.loads(line))
        except (ValueError, KeyError):
            continue  # a carry line, or the cut first line of the tail
    return None
