"""Per-partition materializations of the tables, coalesced (`defs/streaming/materializations.py`).

The progress lines are the streaming job's own format, read back from a real log file; the
day totals and data versions come from a real Iceberg table (pyiceberg appends through the
local SQLite catalog), read from its metadata. Time passes through an injected clock.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from pyiceberg.exceptions import NoSuchTableError

from movesmart_dagster.defs.keys import TABLE_KEYS
from movesmart_dagster.defs.streaming.materializations import (
    DATA_VERSION_TAG,
    PartitionCoalescer,
    report_due,
)
from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.settings import load_settings
from movesmart_dagster.streaming.progress import BatchProgress, DayProgress, TableProgress, append
from movesmart_dagster.tables.catalog import ensure_tables, load_table
from movesmart_dagster.tables.partition_facts import InProcessPartitionFacts, IsolatedPartitionFacts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _batch(batch_id: int, days: dict[str, tuple[int, str, dict]], table: str = "gps_data") -> BatchProgress:
    return BatchProgress(
        batch_id,
        f"2024-06-03T08:00:{batch_id:02d}Z",
        500,
        {
            table: TableProgress(
                rows=sum(d[0] for d in days.values()),
                days={
                    day: DayProgress(rows=n, newest_event_at=newest, offsets=offsets)
                    for day, (n, newest, offsets) in days.items()
                },
            )
        },
    )


@pytest.fixture
def gps_table(tmp_path: Path):
    """A real gps_data table with rows on two days: (settings, append(day, n))."""
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "home")})
    ensure_tables(settings)
    offset = [0]

    def append_rows(day: str, n: int) -> int:
        table = load_table(settings, "gps_data")
        schema = table.schema().as_arrow()
        ts = dt.datetime.fromisoformat(f"{day}T10:00:00+00:00")
        cols = {}
        for f in schema:
            if f.name == "timestamp":
                cols[f.name] = pa.array([ts] * n, f.type)
            elif f.name == "event_date":
                cols[f.name] = pa.array([ts.date()] * n, f.type)
            elif f.name == "kafka_offset":
                cols[f.name] = pa.array(range(offset[0], offset[0] + n), f.type)
            elif f.name in ("id", "deviceId"):
                cols[f.name] = pa.array([f"{day}-{offset[0] + i}" for i in range(n)], f.type)
            else:
                cols[f.name] = pa.nulls(n, f.type)
        offset[0] += n
        table.append(pa.table(cols, schema=schema))
        return load_table(settings, "gps_data").current_snapshot().snapshot_id

    return settings, append_rows


def test_day_totals_and_versions_come_from_the_table_metadata(gps_table):
    settings, append_rows = gps_table
    first = append_rows("2024-06-03", 3)
    second = append_rows("2024-06-04", 5)
    third = append_rows("2024-06-03", 2)
    facts = InProcessPartitionFacts(settings)("gps_data")
    assert {d: (f.rows, f.snapshot_id) for d, f in facts.items()} == {
        "2024-06-03": (5, third),  # the snapshot that last changed that day
        "2024-06-04": (5, second),
    }
    assert first not in {f.snapshot_id for f in facts.values()}


def test_the_streaming_run_reads_the_same_facts_in_a_child_process_that_is_replaced(gps_table):
    """The run worker's reader: the same facts as a read in this process, from a child that is
    replaced after `reads_per_worker` reads and when it dies between reads."""
    settings, append_rows = gps_table
    append_rows("2024-06-03", 3)
    reader = IsolatedPartitionFacts(settings, reads_per_worker=2)
    try:
        assert reader.worker_pids() == []
        expected = InProcessPartitionFacts(settings)("gps_data")
        assert reader("gps_data") == expected
        (first,) = reader.worker_pids()
        assert first != os.getpid()
        latest = append_rows("2024-06-04", 5)
        facts = reader("gps_data")  # the 2nd read: the child's last
        assert {d: f.rows for d, f in facts.items()} == {"2024-06-03": 3, "2024-06-04": 5}
        assert facts["2024-06-04"].snapshot_id == latest
        assert reader("gps_data") == facts
        (second,) = reader.worker_pids()
        assert second != first  # replaced after two reads
        os.kill(second, signal.SIGKILL)
        _wait_for_exit(second)
        assert reader("gps_data") == facts  # a new child answered
        (third,) = reader.worker_pids()
        assert third not in (first, second)
        with pytest.raises(NoSuchTableError):  # a child's error reaches the caller
            reader("no_such_table")
    finally:
        reader.close()
    assert reader.worker_pids() == []


def _wait_for_exit(pid: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/status").read_text().find("zombie") < 0:
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.05)


def test_batches_are_coalesced_per_table_and_day(gps_table, tmp_path):
    settings, append_rows = gps_table
    clock = Clock()
    coalescer = PartitionCoalescer(60, clock)
    read = InProcessPartitionFacts(settings)
    log = dg.get_dagster_logger()
    state = ProgressState()
    path = tmp_path / "progress.jsonl"

    changed_by: dict[str, str] = {}  # day -> the snapshot that last appended to it

    def commit(batch: BatchProgress) -> list[dg.AssetMaterialization]:
        for day, dp in batch.tables["gps_data"].days.items():
            changed_by[day] = str(append_rows(day, dp.rows))
        append(path, batch)
        coalescer.add(state.advance(path))
        return report_due(coalescer, read, log)

    # a day's first rows are reported at once
    (mat,) = commit(_batch(1, {"2024-06-03": (3, "2024-06-03T09:00:00Z", {"gps_data": {"0": [0, 3]}})}))
    assert mat.asset_key == TABLE_KEYS["gps_data"] and mat.partition == "2024-06-03"
    assert mat.metadata["rows_added"].value == 3 and mat.metadata["dagster/row_count"].value == 3
    assert mat.tags[DATA_VERSION_TAG] == changed_by["2024-06-03"]
    # within the interval: nothing for that day, while a new day's first rows still go at once
    clock.now += 20
    assert commit(_batch(2, {"2024-06-03": (4, "2024-06-03T09:30:00.5Z", {"gps_data": {"0": [3, 7]}})})) == []
    clock.now += 20
    (new_day,) = commit(
        _batch(
            3,
            {
                "2024-06-03": (2, "2024-06-03T09:10:00Z", {"gps_data": {"0": [7, 8], "1": [0, 1]}}),
                "2024-06-04": (6, "2024-06-04T00:00:01Z", {"gps_data": {"1": [1, 7]}}),
            },
        )
    )
    assert (new_day.partition, new_day.metadata["rows_added"].value) == ("2024-06-04", 6)
    # the interval has passed: one materialization carries both batches of 2024-06-03
    clock.now += 20
    (mat,) = commit(_batch(4, {}))
    assert mat.partition == "2024-06-03"
    md = mat.metadata
    assert md["rows_added"].value == 6 and md["batches"].value == 2
    assert (md["first_batch_id"].value, md["last_batch_id"].value) == (2, 3)
    assert md["dagster/row_count"].value == 9 == md["total_rows"].value  # 3 + 4 + 2, from the manifests
    assert md["offsets"].value == {"gps_data": {"0": [3, 8], "1": [0, 1]}}
    assert md["newest_event_at"].value == "2024-06-03T09:30:00.5Z"  # the watermark: newest, not latest
    assert md["watermark"].value == dt.datetime(2024, 6, 3, 9, 30, 0, 500000, tzinfo=dt.UTC).timestamp()
    # the data version: the snapshot that last changed this day (batch 3's append), not the newest
    assert mat.tags[DATA_VERSION_TAG] == changed_by["2024-06-03"] != changed_by["2024-06-04"]
    assert new_day.tags[DATA_VERSION_TAG] == changed_by["2024-06-04"]
    # nothing pending: nothing reported, however long it waits
    clock.now += 600
    assert report_due(coalescer, read, log) == []


def test_what_is_pending_is_reported_when_the_job_ends(gps_table):
    settings, append_rows = gps_table
    clock = Clock()
    coalescer = PartitionCoalescer(60, clock)
    read = InProcessPartitionFacts(settings)
    append_rows("2024-06-03", 3)
    coalescer.add([_batch(1, {"2024-06-03": (3, "2024-06-03T09:00:00Z", {"gps_data": {"0": [0, 3]}})})])
    assert len(report_due(coalescer, read, dg.get_dagster_logger())) == 1
    append_rows("2024-06-03", 1)
    coalescer.add([_batch(2, {"2024-06-03": (1, "2024-06-03T09:00:01Z", {"gps_data": {"0": [3, 4]}})})])
    assert report_due(coalescer, read, dg.get_dagster_logger()) == []
    (last,) = report_due(coalescer, read, dg.get_dagster_logger(), flush_all=True)
    assert last.metadata["rows_added"].value == 1 and last.metadata["dagster/row_count"].value == 4


def test_an_unreadable_catalog_still_reports_the_stream(tmp_path):
    """The batch's own facts go out; the metadata facts are left out, with a warning."""
    settings = load_settings({"MOVESMART_HOME": str(tmp_path / "nothing-here")})
    coalescer = PartitionCoalescer(60, Clock())
    coalescer.add([_batch(1, {"2024-06-03": (3, "2024-06-03T09:00:00Z", {"gps_data": {"0": [0, 3]}})})])
    (mat,) = report_due(coalescer, InProcessPartitionFacts(settings), dg.get_dagster_logger())
    assert mat.metadata["rows_added"].value == 3
    assert "dagster/row_count" not in mat.metadata and not mat.tags
