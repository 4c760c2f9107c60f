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
"""

from __future__ import annotations

import json
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


def append(log_path: Path, progress: BatchProgress) -> None:
    """Append one line in a single write call (one writer; readers skip a partial last line)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    line = (progress.to_json() + "\n").encode()
    with open(log_path, "ab") as fh:
        fh.write(line)
        fh.flush()


def read_since(log_path: Path, cursor: int = 0) -> tuple[list[BatchProgress], int]:
    """Complete lines after byte `cursor`; returns them and the new cursor.

    A partial last line (writer mid-append) is left for the next call.
    """
    if not log_path.exists():
        return [], cursor
    with open(log_path, "rb") as fh:
        fh.seek(cursor)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], cursor
    out = [BatchProgress.from_dict(json.loads(line)) for line in data[: end + 1].splitlines() if line.strip()]
    return out, cursor + end + 1


def iter_all(log_path: Path) -> Iterator[BatchProgress]:
    yield from read_since(log_path, 0)[0]


def last(log_path: Path, max_bytes: int = 1 << 20) -> BatchProgress | None:
    """The last complete line of the log (reads only its tail)."""
    if not log_path.exists():
        return None
    with open(log_path, "rb") as fh:
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
            continue
    return None
