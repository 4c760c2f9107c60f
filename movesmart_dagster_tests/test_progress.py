"""The streaming progress log: size-bounded rotation, and its readers across a rotation.

Real files in tmp_path, no Spark: the writer is `progress.append`, as the job calls it."""

from __future__ import annotations

import json
from pathlib import Path

from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.streaming import progress
from movesmart_dagster.streaming.progress import BatchProgress, TableProgress


def batch(batch_id: int) -> BatchProgress:
    """Batch n holds vehicle_data partition 0 offsets [1000 + 100n, 1100 + 100n); batch 0 alone
    also holds partition 1 (a partition that then goes idle)."""
    offsets = {"0": [1000 + 100 * batch_id, 1100 + 100 * batch_id]}
    if batch_id == 0:
        offsets = {"1": [0, 50], **offsets}
    return BatchProgress(
        batch_id=batch_id,
        committed_at=f"2026-12-04T03:00:{batch_id:02d}Z",
        duration_ms=500,
        tables={"vehicle_data": TableProgress(rows=100, offsets=offsets)},
        query_id="q",
    )


def ids(path: Path) -> list[int | str]:
    """Each line of a file: its batch id, or "carry"."""
    out: list[int | str] = []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        out.append("carry" if progress.CARRY in d else d["batch_id"])
    return out


def test_the_log_rotates_to_one_dot_1_file_with_the_committed_offsets_carried(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    line = len(batch(5).to_json()) + 1
    max_bytes = 3 * line + line // 2  # three batch lines fit; a carry line and three do too
    for n in range(10):
        progress.append(log, batch(n), max_bytes)
    rotated = tmp_path / "progress.jsonl.1"
    # file 1: 0 1 2 | file 2: carry 3 4 5 | file 3: carry 6 7 8 (now .1) | file 4: carry 9
    assert ids(rotated) == ["carry", 6, 7, 8]
    assert ids(log) == ["carry", 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.jsonl", "progress.jsonl.1"]
    assert rotated.stat().st_size <= max_bytes and log.stat().st_size <= max_bytes
    carry = json.loads(log.read_text().splitlines()[0])
    # partition 1 had rows only in batch 0, two rotations ago; partition 0 ends with batch 8
    assert carry == {"carry": {"committed": {"vehicle_data": {"0": 1900, "1": 50}}}}

    assert [b.batch_id for b in progress.iter_all(log)] == [6, 7, 8, 9]
    assert progress.last(log).batch_id == 9
    state = ProgressState.load(log)
    assert state.committed_offsets() == {"vehicle_data": {0: 2000, 1: 50}}
    assert state.last_batch_id == 9
    assert state.totals == {"vehicle_data": 400}  # the batches the two files still hold


def test_a_tailing_reader_gets_every_batch_once_across_rotations(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    line = len(batch(5).to_json()) + 1
    max_bytes = 3 * line + line // 2
    state = ProgressState()
    seen: list[int] = []
    for n in range(5):
        progress.append(log, batch(n), max_bytes)
    seen += [b.batch_id for b in state.advance(log)]  # a new reader: .1 (0 1 2), then the log (3 4)
    assert seen == [0, 1, 2, 3, 4]
    for n in (5, 6, 7):  # 6 rotates: the reader's file (carry 3 4 5) becomes .1
        progress.append(log, batch(n), max_bytes)
    assert [b.batch_id for b in state.advance(log)] == [5, 6, 7]
    assert state.advance(log) == []
    # the state survives a sensor cursor (JSON) and goes on from there across the next rotation
    state = ProgressState.from_dict(json.loads(json.dumps(state.to_dict())))
    for n in (8, 9):  # 9 rotates
        progress.append(log, batch(n), max_bytes)
    assert [b.batch_id for b in state.advance(log)] == [8, 9]
    assert state.committed_offsets() == {"vehicle_data": {0: 2000, 1: 50}}
    assert state.totals == {"vehicle_data": 1000}


def test_between_the_rename_and_the_new_log_readers_see_the_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    for n in range(3):
        progress.append(log, batch(n))
    state = ProgressState.load(log)
    log.rename(tmp_path / "progress.jsonl.1")  # the writer's rename, before its first write
    assert progress.last(log).batch_id == 2
    assert state.advance(log) == []
    progress.append(log, batch(3))
    assert [b.batch_id for b in state.advance(log)] == [3]


def test_a_reader_left_behind_by_two_rotations_or_a_replaced_log_starts_over(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    line = len(batch(5).to_json()) + 1
    for n in range(10):
        progress.append(log, batch(n), 3 * line + line // 2)
    lost = ProgressState.from_dict(
        {"cursor": 40, "inode": 1, "last_batch_id": 2, "totals": {"vehicle_data": 7}}
    )
    assert [b.batch_id for b in lost.advance(log)] == [6, 7, 8, 9]
    assert lost.totals == {"vehicle_data": 400}
    assert lost.committed_offsets() == {"vehicle_data": {0: 2000, 1: 50}}

    log.unlink()
    (tmp_path / "progress.jsonl.1").unlink()
    progress.append(log, batch(0))
    assert [b.batch_id for b in lost.advance(log)] == [0]
    assert lost.committed_offsets() == {"vehicle_data": {0: 1100, 1: 50}}


def test_a_cursor_saved_before_rotation_existed_goes_on_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    for n in range(2):
        progress.append(log, batch(n))
    size = log.stat().st_size
    progress.append(log, batch(2))
    old = ProgressState.from_dict({"cursor": size, "last_batch_id": 1})  # no inode: an older sensor cursor
    assert [b.batch_id for b in old.advance(log)] == [2]
    assert old.advance(log) == []


def test_a_log_below_the_limit_is_never_rotated(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    for n in range(10):
        progress.append(log, batch(n))  # the default limit, 32 MiB
    assert ids(log) == list(range(10))
    assert not (tmp_path / "progress.jsonl.1").exists()
    for n in range(10, 12):
        progress.append(log, batch(n), 0)  # 0: never
    assert len(ids(log)) == 12


def test_a_log_truncated_in_place_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    for n in range(3):
        progress.append(log, batch(n))
    state = ProgressState.load(log)
    inode = log.stat().st_ino
    log.write_bytes(b"")  # the same file (inode), emptied: a cursor into it no longer means anything
    progress.append(log, batch(7))
    progress.append(log, batch(8))
    assert log.stat().st_ino == inode and log.stat().st_size < state.cursor
    assert [b.batch_id for b in state.advance(log)] == [7, 8]
    assert state.committed_offsets() == {"vehicle_data": {0: 1900}}
    # the same inode and a cursor inside the file but not at a line's start: also a new file
    other = ProgressState(cursor=5, inode=inode)
    assert [b.batch_id for b in other.advance(log)] == [7, 8]
