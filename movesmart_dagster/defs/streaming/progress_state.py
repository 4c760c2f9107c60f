"""What the orchestrator knows about the streaming job, folded from its progress log.

Why fold: the progress log (streaming/progress.py) is the only record of committed
micro-batches that Dagster does not have to ask Spark for. Folding it incrementally —
a byte cursor plus a small summary — gives the supervisor the committed Kafka offsets
(Spark's Kafka source commits no consumer-group offsets, so lag = end offsets minus
these), the time of the last commit, and running row totals for the materializations.
The summary is JSON-serialisable so it can live in a sensor cursor.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.streaming.progress import CARRY, BatchProgress, fold_committed, follow


def parse_time(text: str | None) -> float | None:
    """ISO-8601 (with Z) -> epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class ProgressState:
    cursor: int = 0  # byte offset into the progress log
    inode: int | None = None  # of the file `cursor` points into (the log, or <log>.1 once rotated)
    last_batch_id: int | None = None
    last_commit_ts: float | None = None
    committed: dict[str, dict[str, int]] = field(default_factory=dict)  # topic -> partition -> end
    # table -> rows written in the batches folded (since this state started, or the log's
    # retained history when it was loaded from the log: a rotation drops older batches)
    totals: dict[str, int] = field(default_factory=dict)

    def apply(self, batch: BatchProgress) -> None:
        self.last_batch_id = batch.batch_id
        ts = parse_time(batch.committed_at)
        if ts is not None:
            self.last_commit_ts = max(ts, self.last_commit_ts or ts)
        for table, tp in batch.tables.items():
            self.totals[table] = self.totals.get(table, 0) + int(tp.rows)
            if table not in TOPICS:
                continue  # quarantine mixes topics; the record tables carry each topic's range
            parts = self.committed.setdefault(table, {})
            for partition, (_start, end) in tp.offsets.items():
                parts[str(partition)] = max(int(end), parts.get(str(partition), 0))

    def advance(self, log_path: Path) -> list[BatchProgress]:
        """Fold the lines appended since the cursor, across rotations of the log; start over
        if the log was replaced or truncated."""
        records, cursor, inode, restarted = follow(log_path, self.cursor, self.inode)
        if restarted:
            self.__init__()  # type: ignore[misc]  # log truncated or recreated: start over
        self.cursor, self.inode = cursor, inode
        batches = []
        for record in records:
            if CARRY in record:
                fold_committed(self.committed, record)  # offsets of the batches rotated away
                continue
            batch = BatchProgress.from_dict(record)
            self.apply(batch)
            batches.append(batch)
        return batches

    def committed_offsets(self) -> dict[str, dict[int, int]]:
        return {t: {int(p): e for p, e in parts.items()} for t, parts in self.committed.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ProgressState:
        return cls(**d) if d else cls()

    @classmethod
    def load(cls, log_path: Path) -> ProgressState:
        state = cls()
        state.advance(log_path)
        return state
