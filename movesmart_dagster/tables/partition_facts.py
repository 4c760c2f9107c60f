"""Each day of a table as its Iceberg metadata describes it: rows and the snapshot that last changed it.

Why from the metadata: `inspect.partitions()` reads the manifests of the current snapshot, not
the data, so a day's total rows and its version cost one metadata read however big the day is.

Why a reader in a child process (`IsolatedPartitionFacts`) for the streaming run: every read parses
the table's whole metadata file, which grows ~1.2 KB with each of the stream's commits until the
snapshots expire (thousands an hour), and a process that reads it every minute for days kept the
peaks of those parses: in a 30-minute soak the run worker grew 14% (296 -> 339 MB) in steps while
the metadata files grew from ~0.2 to ~0.9 MB — with glibc's free pages handed back after each
round (`memory.return_free_memory`), because a parse's many small objects spread over memory that
the long-lived objects made between them keep. A child process that is replaced every
`reads_per_worker` reads (`ProcessPoolExecutor(max_tasks_per_child=...)`) takes those peaks with
it, and the run worker only holds the few numbers it gets back.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from movesmart_dagster.settings import Settings


@dataclass(frozen=True)
class PartitionFacts:
    """A day of a table as its Iceberg metadata describes it."""

    rows: int
    snapshot_id: int | None  # the snapshot that last changed the partition


def read_partition_facts(
    settings: Settings, table: str, catalog: Catalog | None = None
) -> dict[str, PartitionFacts]:
    """day (ISO date) -> facts, from the manifests of the table's current snapshot (pyiceberg)."""
    from movesmart_dagster.tables.catalog import load_table

    stats = load_table(settings, table, catalog).inspect.partitions()
    out: dict[str, PartitionFacts] = {}
    for row in stats.select(["partition", "record_count", "last_updated_snapshot_id"]).to_pylist():
        day = next(iter(row["partition"].values()), None)  # the one field: event_day
        if day is None:
            continue
        key = day.isoformat() if isinstance(day, dt.date) else str(day)
        prior = out.get(key)
        rows = int(row["record_count"]) + (prior.rows if prior else 0)  # one row per spec
        out[key] = PartitionFacts(rows, row["last_updated_snapshot_id"])
    return out


class InProcessPartitionFacts:
    """`read_partition_facts` with the catalog opened once, in this process (tests, one-off reads)."""

    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings, self.catalog = settings, catalog

    def __call__(self, table: str) -> dict[str, PartitionFacts]:
        from movesmart_dagster.tables.catalog import load_catalog

        if self.catalog is None:
            self.catalog = load_catalog(self.settings)
        return read_partition_facts(self.settings, table, self.catalog)

    def close(self) -> None:
        pass


# the worker process's catalog, opened at its first read
_worker_reader: InProcessPartitionFacts | None = None


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the run worker decides when this one stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_read(settings: Settings, table: str) -> dict[str, PartitionFacts]:
    global _worker_reader
    if _worker_reader is None:
        _worker_reader = InProcessPartitionFacts(settings)
    return _worker_reader(table)


class IsolatedPartitionFacts:
    """`read_partition_facts` in a child process, replaced after `reads_per_worker` reads.

    A read that fails raises in the caller, with the child's error; a child that died between
    reads (killed, out of memory) is replaced and the read goes to the new one.
    """

    def __init__(self, settings: Settings, reads_per_worker: int = 100, timeout_s: float = 300.0) -> None:
        self.settings, self.reads_per_worker, self.timeout_s = settings, reads_per_worker, timeout_s
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),  # nothing of this process is copied
                initializer=_worker_init,
                max_tasks_per_child=self.reads_per_worker,
            )
        return self._pool

    def __call__(self, table: str) -> dict[str, PartitionFacts]:
        try:
            return self._read(table)
        except BrokenProcessPool:  # the child died: once more, with a new one
            self.close()
            return self._read(table)

    def _read(self, table: str) -> dict[str, PartitionFacts]:
        return self._executor().submit(_worker_read, self.settings, table).result(self.timeout_s)

    def worker_pids(self) -> list[int]:
        """The child's pid (none before the first read): what tests and diagnostics look at."""
        processes: dict[int, Any] = getattr(self._pool, "_processes", None) or {}
        return sorted(processes)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
