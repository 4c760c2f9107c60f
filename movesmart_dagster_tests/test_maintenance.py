"""`movesmart tables compact|expire|remove-orphans` on tables the real streaming job wrote.

One broker and one local (SQLite JDBC) catalog for the module: the real job drains a small
backlog in many micro-batches, so a day holds several files per table; then the CLI runs in
subprocesses with real Spark and Iceberg's procedures, mutating the tables in order. Rows are
read back through `movesmart query`, files and snapshots through pyiceberg.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from movesmart_dagster.schemas import ALL_TABLES
from movesmart_dagster.settings import Settings, SettingsError, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.streaming.progress import iter_all
from movesmart_dagster.tables.catalog import load_catalog, load_table
from movesmart_dagster_tests.conftest import stack_env
from movesmart_dagster_tests.test_streaming_support import (
    MOVESMART,
    REPO,
    SPARK_ENV,
    check_exact,
    run_cli,
    simulate,
)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Settings]]:
    env = stack_env(tmp_path_factory.mktemp("maint-home"))
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        simulate(env, "--vehicles", "2", "--seed", "5", "--max-events", "3000", "--bad-ratio", "0.03")
        run = run_cli(env, "stream", "--available-now", "--max-offsets-per-trigger", "600")
        assert run.returncode == 0, run.stderr[-4000:]
        yield env, settings
    finally:
        broker.down()


def files_per_day(settings: Settings) -> dict[tuple[str, date | None], int]:
    """Data files of each (table, day partition) in the current snapshots, by pyiceberg."""
    catalog = load_catalog(settings)
    out: Counter[tuple[str, date | None]] = Counter()
    for table in ALL_TABLES:
        for task in load_table(settings, table, catalog).scan().plan_files():
            days = task.file.partition[0]
            out[(table, None if days is None else date(1970, 1, 1) + timedelta(days=days))] += 1
    return dict(out)


_ALL_ROWS = " union all ".join(
    f"select '{t}' as t, kafka_topic, kafka_partition, kafka_offset from {t}" for t in ALL_TABLES
)


def rows_by_query(env: dict[str, str]) -> list[tuple[str, str, int, int]]:
    """(table, kafka_topic, kafka_partition, kafka_offset) of every row, by `movesmart query`."""
    proc = run_cli(env, "query", _ALL_ROWS, "--format", "csv")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reader = csv.reader(io.StringIO(proc.stdout))
    assert next(reader) == ["t", "kafka_topic", "kafka_partition", "kafka_offset"]
    return [(t, topic, int(p), int(o)) for t, topic, p, o in reader]


def test_compact_without_arguments_leaves_one_file_per_day_and_the_same_rows(
    streamed: tuple[dict[str, str], Settings],
) -> None:
    env, settings = streamed
    before_files = files_per_day(settings)
    (table, day), most = max(before_files.items(), key=lambda kv: kv[1])
    assert most > 1, f"the job's micro-batches left one file per day: {before_files}"
    before_rows = rows_by_query(env)
    assert len(before_rows) == len(set(before_rows)) > 0

    proc = run_cli(env, "tables", "compact")
    assert proc.returncode == 0, proc.stderr[-4000:]

    after_files = files_per_day(settings)
    assert after_files == dict.fromkeys(before_files, 1)
    assert f"{table} {day}: files {most} -> 1, bytes " in proc.stdout, proc.stdout
    # one line per partition, every one of them
    assert len([line for line in proc.stdout.splitlines() if ": files " in line]) == len(before_files)
    after_rows = rows_by_query(env)
    assert len(after_rows) == len(before_rows)
    assert set(after_rows) == set(before_rows)
    check_exact(settings)


def test_expire_keeps_the_retained_snapshots(streamed: tuple[dict[str, str], Settings]) -> None:
    env, settings = streamed
    catalog = load_catalog(settings)
    before = {t: load_table(settings, t, catalog) for t in ALL_TABLES}
    gps = before["gps_data"]
    newest = [s.snapshot_id for s in sorted(gps.snapshots(), key=lambda s: s.timestamp_ms)][-2:]
    assert len(gps.snapshots()) > 2
    rows = gps.scan().to_arrow().num_rows

    # default retention (1 hour): nothing here is old enough
    proc = run_cli(env, "tables", "expire", "--table", "weather_data")
    assert proc.returncode == 0, proc.stderr[-4000:]
    n = len(before["weather_data"].snapshots())
    assert f"weather_data: snapshots {n} -> {n}" in proc.stdout, proc.stdout

    proc = run_cli(
        {**env, "MOVESMART_SNAPSHOT_RETENTION": "PT0S"},
        "tables",
        "expire",
        "--table",
        "gps_data",
        "--retain-last",
        "2",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    catalog = load_catalog(settings)
    after = load_table(settings, "gps_data", catalog)
    assert sorted(s.snapshot_id for s in after.snapshots()) == sorted(newest)
    assert after.current_snapshot().snapshot_id == gps.current_snapshot().snapshot_id
    assert after.scan().to_arrow().num_rows == rows
    for t in ALL_TABLES:  # the tables not named keep every snapshot
        if t != "gps_data":
            assert len(load_table(settings, t, catalog).snapshots()) == len(before[t].snapshots()), t
    check_exact(settings)


def test_remove_orphans_deletes_old_unreferenced_files_only(
    streamed: tuple[dict[str, str], Settings],
) -> None:
    env, settings = streamed
    refused = run_cli(env, "tables", "remove-orphans", "--older-than-hours", "0.5")
    assert refused.returncode == 1
    assert "below the safe minimum of 1 hour" in refused.stderr

    data_dir = settings.home_dir / "warehouse" / settings.glue_database / "vehicle_data" / "data"
    assert data_dir.is_dir()
    old, young = data_dir / "planted-old.parquet", data_dir / "planted-young.parquet"
    old.write_bytes(b"not referenced by any snapshot")
    young.write_bytes(b"not referenced either, but young")
    four_days_ago = time.time() - 4 * 86400
    os.utime(old, (four_days_ago, four_days_ago))
    referenced = {
        Path(t.file.file_path.removeprefix("file:"))
        for t in load_table(settings, "vehicle_data").scan().plan_files()
    }

    proc = run_cli(env, "tables", "remove-orphans", "--table", "vehicle_data")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not old.exists()
    assert young.exists()
    assert "vehicle_data: 1 orphan files removed" in proc.stdout, proc.stdout
    assert all(p.exists() for p in referenced)
    check_exact(settings)


def test_maintenance_settings_are_read_and_checked() -> None:
    settings = load_settings(
        {"MOVESMART_SNAPSHOT_RETENTION": "PT12H", "MOVESMART_TARGET_FILE_BYTES": "1048576"}
    )
    assert settings.snapshot_retention == timedelta(hours=12)
    assert settings.target_file_bytes == 1_048_576
    defaults = load_settings({})
    assert (defaults.snapshot_retention, defaults.target_file_bytes) == (
        timedelta(hours=1),
        128 * 1024 * 1024,
    )
    with pytest.raises(SettingsError, match="MOVESMART_SNAPSHOT_RETENTION='-P1D'"):
        load_settings({"MOVESMART_SNAPSHOT_RETENTION": "-P1D"})
    with pytest.raises(SettingsError, match="MOVESMART_TARGET_FILE_BYTES='0'"):
        load_settings({"MOVESMART_TARGET_FILE_BYTES": "0"})


def test_compact_while_the_stream_appends_loses_and_doubles_nothing(
    streamed: tuple[dict[str, str], Settings],
) -> None:
    """Compaction commits between the job's appends (a rewrite and an append do not conflict;
    a lost commit race is retried by Iceberg): every offset is exactly one row after a drain."""
    env, settings = streamed
    simulate(env, "--vehicles", "2", "--seed", "6", "--max-events", "6000", "--bad-ratio", "0.03")
    batches_before = len(list(iter_all(settings.progress_log)))
    stream = subprocess.Popen(
        [*MOVESMART, "stream", "--trigger-interval", "1 second", "--max-offsets-per-trigger", "300"],
        env={**os.environ, **SPARK_ENV, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(iter_all(settings.progress_log))) == batches_before:
            assert stream.poll() is None, stream.stderr.read()[-3000:] if stream.stderr else ""
            assert time.monotonic() < deadline, "the stream committed no batch in 240 s"
            time.sleep(0.5)
        batches_at_compact = len(list(iter_all(settings.progress_log)))
        compacted = run_cli(env, "tables", "compact")
        batches_after_compact = len(list(iter_all(settings.progress_log)))
        stream.send_signal(signal.SIGTERM)
        _, err = stream.communicate(timeout=180)
    finally:
        if stream.poll() is None:
            os.killpg(stream.pid, signal.SIGKILL)
    assert compacted.returncode == 0, compacted.stderr[-4000:]
    assert stream.returncode == 0, err[-3000:]
    assert batches_after_compact > batches_at_compact, "no batch committed while compaction ran"
    rewritten = [
        line for line in compacted.stdout.splitlines() if "-> " in line and " files 1 ->" not in line
    ]
    assert rewritten, compacted.stdout
    final = run_cli(env, "stream", "--available-now")
    assert final.returncode == 0, final.stderr[-3000:]
    check_exact(settings)
