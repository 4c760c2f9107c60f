"""Per-partition materializations of the table assets, coalesced in time.

Why coalesce: the stream commits a batch every few seconds, and one materialization per table
per batch filled the event log with ~52,000 rows a day, all in one asset history. Here the
committed batches are folded per (table, day) and a day is reported at most once per
MOVESMART_MATERIALIZATION_INTERVAL_SECONDS (60): rows added since its last report, the Kafka
offset ranges they came from, the batches, and its watermark (newest event time). A day's
first rows are reported at the first poll after their batch (within one interval, as a rule
within a second); later rows wait until the day's interval has passed. At steady state that
is one row per table per minute for the current day (60 an hour), plus one per interval for
each older day that gets late records.

Each materialization also carries facts read from the table's Iceberg metadata, not a scan
(`tables/partition_facts.py`: the manifests of the current snapshot): the day's total rows
(`dagster/row_count`) and its data version — the id of the snapshot that last changed that
partition, so the version moves exactly when the day's data does. The tables are read once per
round of due days; the streaming run reads them in a child process (`IsolatedPartitionFacts`), so
that the metadata parses of a run that lasts for days leave nothing behind in its worker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from movesmart_dagster.defs.keys import TABLE_KEYS
from movesmart_dagster.streaming.progress import BatchProgress
from movesmart_dagster.tables.partition_facts import PartitionFacts

DATA_VERSION_TAG = "dagster/data_version"


# table -> day -> facts; raises when the catalog cannot be read
PartitionFactsReader = Callable[[str], dict[str, PartitionFacts]]


@dataclass
class PendingDay:
    """What a (table, day) received since its last materialization."""

    rows: int = 0
    newest_event_at: str | None = None
    newest_event_ts: float | None = None
    offsets: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    first_batch: int | None = None
    last_batch: int | None = None
    batches: int = 0
    committed_at: str | None = None

    def add(self, batch: BatchProgress, rows: int, newest: str | None, offsets: dict) -> None:
        self.rows += rows
        self.batches += 1
        self.first_batch = batch.batch_id if self.first_batch is None else self.first_batch
        self.last_batch = batch.batch_id
        self.committed_at = batch.committed_at
        ts = _epoch(newest)
        if ts is not None and (self.newest_event_ts is None or ts > self.newest_event_ts):
            self.newest_event_ts, self.newest_event_at = ts, newest
        for topic, parts in offsets.items():
            mine = self.offsets.setdefault(topic, {})
            for partition, (start, end) in parts.items():
                rng = mine.setdefault(str(partition), [int(start), int(end)])
                rng[0], rng[1] = min(rng[0], int(start)), max(rng[1], int(end))


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class PartitionCoalescer:
    """Folds committed batches per (table, day); `due` says which days to report now.

    `clock` is injectable (monotonic seconds) so tests let intervals pass without sleeping.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.pending: dict[tuple[str, str], PendingDay] = {}
        self.reported_at: dict[tuple[str, str], float] = {}

    def add(self, batches: Iterable[BatchProgress]) -> None:
        for batch in batches:
            for table, tp in batch.tables.items():
                if table not in TABLE_KEYS:
                    continue
                for day, dp in tp.days.items():
                    if dp.rows <= 0:
                        continue
                    pending = self.pending.setdefault((table, day), PendingDay())
                    pending.add(batch, dp.rows, dp.newest_event_at, dp.offsets)

    def due(self, flush_all: bool = False) -> list[tuple[str, str]]:
        """Days with pending rows whose interval has passed (or every pending day)."""
        now = self.clock()
        return sorted(
            key
            for key in self.pending
            if flush_all or key not in self.reported_at or now - self.reported_at[key] >= self.interval_s
        )

    def take(self, key: tuple[str, str]) -> PendingDay:
        self.reported_at[key] = self.clock()
        return self.pending.pop(key)


def materialization(
    table: str, day: str, pending: PendingDay, facts: PartitionFacts | None
) -> dg.AssetMaterialization:
    """One table day's materialization: what arrived since the last one, and the day's state."""
    metadata: dict[str, Any] = {
        "rows_added": pending.rows,
        "batches": pending.batches,
        "first_batch_id": pending.first_batch,
        "last_batch_id": pending.last_batch,
        "offsets": dg.MetadataValue.json(pending.offsets),
    }
    if pending.newest_event_ts is not None:
        metadata["watermark"] = dg.MetadataValue.timestamp(pending.newest_event_ts)
        metadata["newest_event_at"] = pending.newest_event_at
    committed = _epoch(pending.committed_at)
    if committed is not None:
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(committed)
    tags = {}
    if facts is not None:
        metadata["dagster/row_count"] = facts.rows
        metadata["total_rows"] = facts.rows
        if facts.snapshot_id is not None:
            metadata["snapshot_id"] = str(facts.snapshot_id)
            tags[DATA_VERSION_TAG] = str(facts.snapshot_id)
    return dg.AssetMaterialization(
        asset_key=TABLE_KEYS[table],
        partition=day,
        description=f"{pending.rows} rows in {pending.batches} batch(es)",
        metadata=metadata,
        tags=tags or None,
    )


def report_due(
    coalescer: PartitionCoalescer,
    read_facts: PartitionFactsReader,
    log: Any,
    flush_all: bool = False,
) -> list[dg.AssetMaterialization]:
    """The materializations due now, the tables' metadata read once per table."""
    due = coalescer.due(flush_all)
    facts: dict[str, dict[str, PartitionFacts] | None] = {}
    out = []
    for table, day in due:
        if table not in facts:
            try:
                facts[table] = read_facts(table)
            except Exception as err:  # noqa: BLE001 - a catalog hiccup must not stop the stream's reports
                log.warning(f"could not read the partitions of {table} from its metadata: {err}")
                facts[table] = None
        table_facts = facts[table]
        out.append(materialization(table, day, coalescer.take((table, day)), (table_facts or {}).get(day)))
    return out
