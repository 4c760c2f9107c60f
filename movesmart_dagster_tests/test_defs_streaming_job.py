"""`streaming_job` for real: the op runs the Spark streaming job as a child and reports its days.

The simulator writes to the platform broker, the job drains it (`available_now`, in several
small batches) through real Spark into the Iceberg tables, and the op reports per-partition
materializations, coalesced: with an interval longer than the run, each (table, day) gets its
first rows at once and the rest when the job ends — at most two, however many batches. Every
Kafka record must appear exactly once across the `rows_added`; each day's last `total_rows`
and data version must be the table's own (its metadata); the offsets the batches reported must
reach the topics' end offsets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from movesmart_dagster.defs.keys import TABLE_KEYS
from movesmart_dagster.defs.resources import KafkaResource, SparkResource
from movesmart_dagster.defs.streaming.job import remembered_interrupts, streaming_job
from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.schemas import ALL_TABLES, TABLES, TOPICS
from movesmart_dagster.settings import load_settings
from movesmart_dagster.tables.catalog import load_table

BIN = Path(sys.executable).parent


def test_streaming_job_reports_every_batch(platform_stack, tmp_path, monkeypatch):
    env = {
        **platform_stack.env,
        "MOVESMART_HOME": str(tmp_path / "home"),
        "MOVESMART_SPARK_MASTER": "local[2]",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sim = subprocess.run(
        [
            str(BIN / "movesmart"),
            "simulate",
            "--vehicles",
            "3",
            "--seed",
            "7",
            "--max-events",
            "1500",
            "--bad-ratio",
            "0.02",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sim.returncode == 0, sim.stderr[-2000:]
    kafka = KafkaResource(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    ends = kafka.end_offsets(TOPICS)

    with dg.instance_for_test() as instance:
        result = streaming_job.execute_in_process(
            instance=instance,
            resources={"kafka": kafka, "spark": SparkResource(spark_driver_memory="1g")},
            run_config={
                "ops": {
                    "run_streaming_job": {
                        "config": {
                            "available_now": True,
                            "max_offsets_per_trigger": 300,
                            "materialization_interval_s": 3600,
                        }
                    }
                }
            },
        )
        assert result.success
        mats = {t: instance.fetch_materializations(key, limit=1000).records for t, key in TABLE_KEYS.items()}
        # each is in the event log as it is made, and the op holds none of them until it ends
        # (it runs for days): none comes out of the op's return
        assert result.get_asset_materialization_events() == []

    settings = load_settings(env)
    state = ProgressState.load(settings.progress_log)
    assert state.last_batch_id is not None and state.last_batch_id >= 4  # several batches ...
    for table in TABLES:
        assert mats[table], f"no materialization of {table}"
    added = sum(m.asset_materialization.metadata["rows_added"].value for recs in mats.values() for m in recs)
    assert added == sum(sum(parts.values()) for parts in ends.values())  # every record exactly once
    assert mats["quarantine"], "2% malformed records must reach quarantine"
    for table in ALL_TABLES:
        by_day: dict[str, list] = {}
        for record in reversed(mats[table]):  # oldest first
            by_day.setdefault(record.partition_key, []).append(record.asset_materialization)
        iceberg = load_table(settings, table)
        days = {
            d.isoformat(): n
            for d, n in iceberg.scan(selected_fields=("event_date",))
            .to_duckdb("t")
            .sql("select event_date, count(*) from t group by 1")
            .fetchall()
        }
        assert set(by_day) == set(days), table  # one partition key per day the table holds
        for day, day_mats in by_day.items():
            assert 1 <= len(day_mats) <= 2, (table, day, len(day_mats))  # ... coalesced
            last = day_mats[-1].metadata
            assert sum(m.metadata["rows_added"].value for m in day_mats) == days[day]
            assert last["dagster/row_count"].value == days[day] == last["total_rows"].value
            assert day_mats[-1].tags["dagster/data_version"] == last["snapshot_id"].value
            assert int(last["snapshot_id"].value) in {s.snapshot_id for s in iceberg.snapshots()}
            assert last["watermark"].value > 0 and last["offsets"].value
    assert state.committed_offsets() == {
        t: {p: e for p, e in parts.items() if e} for t, parts in ends.items()
    }
    assert set(state.totals) <= set(ALL_TABLES)


def test_a_second_streaming_run_refuses_to_start(platform_stack, tmp_path, monkeypatch):
    from dagster._core.test_utils import create_run_for_test

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    kafka = KafkaResource(kafka_bootstrap_servers=platform_stack.env["KAFKA_BOOTSTRAP_SERVERS"])
    with dg.instance_for_test() as instance:
        first = create_run_for_test(instance, job_name="streaming_job", status=dg.DagsterRunStatus.STARTED)
        result = streaming_job.execute_in_process(
            instance=instance, resources={"kafka": kafka, "spark": SparkResource()}, raise_on_error=False
        )
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error
        assert f"another streaming run is active ({first.run_id[:8]})" in failure.message
    assert not (tmp_path / "home" / "streaming" / "logs").exists()  # no child was started


def test_an_interrupt_swallowed_on_its_way_is_still_remembered():
    """Dagster's handler raises the interrupt into whatever runs; when that code swallows it (it
    happened inside Dagster's event writing), the op still sees it in the event it polls."""

    def dagster_like(signo, frame):
        raise dg.DagsterExecutionInterruptedError()

    previous = signal.signal(signal.SIGINT, dagster_like)
    term = signal.getsignal(signal.SIGTERM)
    try:
        with remembered_interrupts() as interrupted:
            assert not interrupted.is_set()
            deadline = time.monotonic() + 10
            try:  # the code the interrupt lands in swallows it
                os.kill(os.getpid(), signal.SIGINT)
                while time.monotonic() < deadline:
                    pass
            except dg.DagsterExecutionInterruptedError:
                pass
            assert interrupted.is_set()
        assert signal.getsignal(signal.SIGINT) is dagster_like  # restored
        assert signal.getsignal(signal.SIGTERM) is term  # not a Python handler here: left alone
    finally:
        signal.signal(signal.SIGINT, previous)
