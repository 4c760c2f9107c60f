"""The streaming supervisor against a real DagsterInstance and a real broker, one test per decision.

Runs are created in the instance with the statuses each case needs; Kafka lag comes from
messages produced to the platform broker; committed offsets from a progress log written by
the streaming job's own `progress.append`. Nothing is mocked. Time passes through the
sensor's injected clock (or `decide(now=...)`), never by sleeping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from confluent_kafka import Producer
from dagster._core.test_utils import create_run_for_test

from movesmart_dagster.defs.keys import STREAMING_JOB_NAME, TOPIC_KEYS
from movesmart_dagster.defs.resources import KafkaResource, SparkResource
from movesmart_dagster.defs.streaming.supervisor import (
    SupervisorState,
    backoff_seconds,
    build_supervisor_sensor,
    decide,
)
from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.processes import clear_stopping, mark_stopping, stopping_marker
from movesmart_dagster.streaming.progress import BatchProgress, TableProgress, append


@pytest.fixture
def env(platform_stack, tmp_path, monkeypatch) -> Iterator[dict[str, str]]:
    values = {
        **platform_stack.env,
        "MOVESMART_HOME": str(tmp_path / "home"),
        "MOVESMART_SUPERVISOR_STALL_SECONDS": "1",
        "MOVESMART_SUPERVISOR_BACKOFF_SECONDS": "0",
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="module")
def produced(platform_stack) -> dict[str, int]:
    """Some messages in every topic, so the job's lag is > 0 until it commits them."""
    settings = platform_stack.settings
    KafkaResource(kafka_bootstrap_servers=settings.kafka_bootstrap_servers).ensure_topics(TOPICS)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, **client_logging()})
    for topic in TOPICS:
        for i in range(20):
            producer.produce(topic, key=f"dev-{i % 4}", value=json.dumps({"i": i}).encode())
    assert producer.flush(30) == 0
    return {t: 20 for t in TOPICS}


def _tick(instance: dg.DagsterInstance, env: dict[str, str], cursor: str | None = None, later_s: float = 0.0):
    """One sensor tick whose clock reads `later_s` seconds after the real time."""
    sensor = build_supervisor_sensor(load_settings(env), clock=lambda: time.time() + later_s)
    resources = {
        "kafka": KafkaResource(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]),
        "spark": SparkResource(home=env["MOVESMART_HOME"]),
    }
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as ctx:
        return sensor.evaluate_tick(ctx)


def _run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    return create_run_for_test(instance, job_name=STREAMING_JOB_NAME, status=status)


def _failed_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    run = _run(instance, dg.DagsterRunStatus.STARTED)
    instance.report_run_failed(run)
    return instance.get_run_by_id(run.run_id)


def _ends(env: dict[str, str]) -> dict[str, dict[int, int]]:
    return KafkaResource(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]).end_offsets(TOPICS)


def _commit_batch(
    home: Path, batch_id: int, offsets: dict[str, dict[int, int]], committed_at: float | None = None
) -> None:
    tables = {
        t: TableProgress(
            rows=sum(parts.values()),
            offsets={str(p): [0, e] for p, e in parts.items()},
            partitions=["2024-01-01"],
        )
        for t, parts in offsets.items()
    }
    at = datetime.fromtimestamp(time.time() if committed_at is None else committed_at, UTC)
    stamp = at.isoformat().replace("+00:00", "Z")
    append(home / "streaming" / "progress.jsonl", BatchProgress(batch_id, stamp, 100, tables))


def test_sensor_is_running_by_default(env):
    sensor = build_supervisor_sensor(load_settings(env))
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == STREAMING_JOB_NAME


def test_nothing_running_launches(instance, env):
    data = _tick(instance, env)
    assert len(data.run_requests) == 1
    assert data.run_requests[0].tags["movesmart/launched_by"] == "streaming_supervisor"
    assert "no active streaming run (no run yet)" in data.run_requests[0].tags["movesmart/reason"]


def test_nothing_is_launched_while_make_dev_stops(instance, env):
    """After Ctrl-C, `make dev` stops the streaming run; a tick in between must not replace it.
    A marker left by a `make dev` that no longer lives means nothing."""
    home = Path(env["MOVESMART_HOME"])
    mark_stopping(home)  # this process: alive
    data = _tick(instance, env)
    assert not data.run_requests and data.skip_message.startswith("[wait] the platform is stopping")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stopping_marker(home).write_text(str(dead.pid))
    assert len(_tick(instance, env, data.cursor).run_requests) == 1
    clear_stopping(home)
    assert not stopping_marker(home).exists()


def test_already_running_waits(instance, env, produced):
    run = _run(instance, dg.DagsterRunStatus.STARTED)
    data = _tick(instance, env)
    assert not data.run_requests
    assert data.skip_message.startswith("[wait]")
    assert run.run_id[:8] in data.skip_message
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED


def test_only_decisions_that_change_something_reach_the_terminal(instance, env, produced, capfd):
    """Dagster prints a sensor's INFO lines on the console (the `make dev` terminal)."""
    _tick(instance, env)  # nothing runs: [launch]
    assert "[launch]" in capfd.readouterr().err
    _run(instance, dg.DagsterRunStatus.STARTED)
    data = _tick(instance, env)
    assert data.skip_message.startswith("[wait]")  # the UI's tick list still says it
    assert "[wait]" not in capfd.readouterr().err


def test_starting_run_counts_as_active(instance, env):
    _run(instance, dg.DagsterRunStatus.STARTING)
    data = _tick(instance, env)
    assert not data.run_requests and "is STARTING" in data.skip_message


def test_a_launched_run_not_yet_started_counts_as_active(instance, env):
    """On a busy machine a launched run waits (QUEUED, NOT_STARTED) longer than one tick: launching
    another then made each run fail on the other ("another streaming run is active") and alert.
    (A QUEUED run cannot be made here without a code location; the rule is the same: not finished.)"""
    _run(instance, dg.DagsterRunStatus.NOT_STARTED)
    data = _tick(instance, env)
    assert not data.run_requests and "is NOT_STARTED" in data.skip_message


def test_failed_run_is_relaunched(instance, env):
    failed = _failed_run(instance)
    data = _tick(instance, env)
    assert len(data.run_requests) == 1
    reason = data.run_requests[0].tags["movesmart/reason"]
    assert f"last run {failed.run_id[:8]} FAILURE" in reason and "attempt 2" in reason
    state = SupervisorState.from_cursor(data.cursor)
    assert state.failures == 1 and failed.run_id in state.seen_runs


def test_stalled_run_is_terminated_then_relaunched(instance, env, produced):
    home = Path(env["MOVESMART_HOME"])
    ends = _ends(env)
    committed = {t: {p: min(e, 2) for p, e in parts.items()} for t, parts in ends.items()}
    _commit_batch(home, 0, committed)  # at most 2 per partition read: lag > 0
    expected_lag = sum(e for parts in ends.values() for e in parts.values()) - sum(
        c for parts in committed.values() for c in parts.values()
    )
    run = _run(instance, dg.DagsterRunStatus.STARTED)
    first = _tick(instance, env, later_s=2)  # the lag is seen: the window starts now
    assert first.skip_message.startswith("[wait]"), first.skip_message
    # the lag outlives MOVESMART_SUPERVISOR_STALL_SECONDS=1 with no commit: stalled
    data = _tick(instance, env, first.cursor, later_s=3.5)
    assert data.skip_message.startswith("[terminate]"), data.skip_message
    assert "stalled" in data.skip_message and f"Kafka lag is {expected_lag} " in data.skip_message
    # no run worker exists for this run, so the supervisor marks it cancelled itself
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    # next tick: nothing active, backoff 0 -> relaunch
    data2 = _tick(instance, env, data.cursor, later_s=3.5)
    assert len(data2.run_requests) == 1
    assert "CANCELED" in data2.run_requests[0].tags["movesmart/reason"]


def test_idle_run_with_no_lag_is_not_stalled(instance, env, produced):
    home = Path(env["MOVESMART_HOME"])
    _commit_batch(home, 0, _ends(env))  # everything committed: lag 0
    _run(instance, dg.DagsterRunStatus.STARTED)
    data = _tick(instance, env, later_s=5)  # quiet for longer than the 1 s window
    assert data.skip_message.startswith("[wait]") and "Kafka lag 0" in data.skip_message
    assert SupervisorState.from_cursor(data.cursor).lag_since is None


def test_crash_loop_backs_off(instance, env, monkeypatch):
    monkeypatch.setenv("MOVESMART_SUPERVISOR_BACKOFF_SECONDS", "60")
    env = {**env, "MOVESMART_SUPERVISOR_BACKOFF_SECONDS": "60"}
    for _ in range(3):
        _failed_run(instance)
    data = _tick(instance, env)
    assert not data.run_requests
    assert data.skip_message.startswith("[backoff]"), data.skip_message
    assert "3 consecutive failure(s)" in data.skip_message
    state = SupervisorState.from_cursor(data.cursor)
    assert state.failures == 3 and state.next_launch_at > time.time() + 200  # 60 * 2**2 = 240 s
    # the same failures are not counted twice on the next tick
    data2 = _tick(instance, env, data.cursor)
    assert SupervisorState.from_cursor(data2.cursor).failures == 3 and not data2.run_requests


def test_a_committed_batch_resets_the_failure_count(instance, env, produced):
    state = SupervisorState(failures=4, next_launch_at=0)
    _commit_batch(Path(env["MOVESMART_HOME"]), 7, _ends(env))
    data = _tick(instance, env, state.to_cursor())
    assert SupervisorState.from_cursor(data.cursor).failures == 0
    assert len(data.run_requests) == 1


def test_backoff_is_exponential_and_capped():
    assert [backoff_seconds(n, 15, 600) for n in range(7)] == [0, 15, 30, 60, 120, 240, 480]
    assert backoff_seconds(10, 15, 600) == 600


def test_topics_are_observed_with_end_offsets(instance, env, produced):
    data = _tick(instance, env)
    observed = {e.asset_key: e for e in data.asset_events}
    assert set(observed) == set(TOPIC_KEYS.values())
    vehicle = observed[TOPIC_KEYS["vehicle_data"]]
    assert vehicle.metadata["messages_total"].value >= 20
    assert vehicle.metadata["streaming_lag"].value >= 20
    # unchanged offsets are not observed again within the minute
    assert not _tick(instance, env, data.cursor).asset_events


class _CountingKafka(KafkaResource):
    """The real resource, counting its end-offset requests to the broker."""

    def end_offsets(self, topics, timeout=8.0):  # type: ignore[no-untyped-def]
        END_OFFSET_CALLS.append(tuple(topics))
        return super().end_offsets(topics, timeout)


END_OFFSET_CALLS: list[tuple[str, ...]] = []


def test_a_running_tick_asks_kafka_for_end_offsets_once(instance, env, produced):
    """The lag decision and the topic observations of one tick share one end-offsets request."""
    _run(instance, dg.DagsterRunStatus.STARTED)
    ends = _ends(env)  # the module's broker holds what earlier tests produced too; nothing committed
    lag = {topic: sum(parts.values()) for topic, parts in ends.items()}
    sensor = build_supervisor_sensor(load_settings(env))
    resources = {
        "kafka": _CountingKafka(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]),
        "spark": SparkResource(home=env["MOVESMART_HOME"]),
    }
    END_OFFSET_CALLS.clear()
    with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
        data = sensor.evaluate_tick(ctx)
    assert len(END_OFFSET_CALLS) == 1
    assert data.skip_message.startswith("[wait]") and f"Kafka lag {sum(lag.values())}" in data.skip_message
    observed = {
        e.asset_key: e.metadata["streaming_lag"].value
        for e in data.asset_events
        if isinstance(e, dg.AssetObservation)
    }
    assert observed == {key: lag[topic] for topic, key in TOPIC_KEYS.items()}
    lag_checks = [e for e in data.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert len(lag_checks) == len(TOPIC_KEYS)  # the lag check's first verdicts, from the same offsets


def test_a_run_stuck_starting_is_cleared_then_relaunched(instance, env):
    run = _run(instance, dg.DagsterRunStatus.STARTING)
    # longer than MOVESMART_SUPERVISOR_STALL_SECONDS=1 without a status change
    data = _tick(instance, env, later_s=2)
    assert data.skip_message.startswith("[clear]") and "stuck in STARTING" in data.skip_message
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    data2 = _tick(instance, env, data.cursor, later_s=2)
    assert len(data2.run_requests) == 1
    assert SupervisorState.from_cursor(data2.cursor).failures == 1  # counted once, not twice


def test_lag_after_an_idle_gap_longer_than_the_window_is_not_a_stall(instance, env, produced):
    """The simulator pauses longer than the window, then resumes: the run gets a full window
    from the moment the lag appears, and only a lag that outlives it with no commit is a stall."""
    settings = load_settings({**env, "MOVESMART_SUPERVISOR_STALL_SECONDS": "300"})
    kafka = KafkaResource(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    home = Path(env["MOVESMART_HOME"])
    run = _run(instance, dg.DagsterRunStatus.STARTED)
    t0 = time.time()
    _commit_batch(home, 0, _ends(env), committed_at=t0)  # everything committed: lag 0
    state = SupervisorState()
    assert decide(instance, settings, kafka, state, now=t0 + 10).action == "wait"
    assert state.lag_since is None

    # 346 s of silence (no input, so no batch), then the simulator resumes: lag 12
    producer = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    for i in range(12):
        producer.produce("gps_data", key=f"dev-{i % 4}", value=json.dumps({"i": i}).encode())
    assert producer.flush(30) == 0
    resumed = t0 + 346
    decision = decide(instance, settings, kafka, state, now=resumed + 1)
    assert decision.action == "wait", decision.reason
    assert "healthy" in decision.reason and "Kafka lag 12" in decision.reason
    assert state.lag_since == resumed + 1
    # within the window from the lag's appearance: still healthy
    assert decide(instance, settings, kafka, state, now=resumed + 300).action == "wait"

    # the job commits the new records: lag 0 again, the window is reset
    ends = _ends(env)
    _commit_batch(home, 1, ends, committed_at=resumed + 12)
    decision = decide(instance, settings, kafka, state, now=resumed + 310)
    assert decision.action == "wait" and "Kafka lag 0" in decision.reason
    assert state.lag_since is None

    # a real stall: new lag that stays > 0 for longer than the window with no commit
    for i in range(5):
        producer.produce("gps_data", key=f"dev-{i % 4}", value=json.dumps({"j": i}).encode())
    assert producer.flush(30) == 0
    stuck_at = resumed + 400
    assert decide(instance, settings, kafka, state, now=stuck_at).action == "wait"
    assert decide(instance, settings, kafka, state, now=stuck_at + 299).action == "wait"
    decision = decide(instance, settings, kafka, state, now=stuck_at + 301)
    assert decision.action == "terminate" and decision.run_id == run.run_id
    assert "Kafka lag > 0 for 301s" in decision.reason and "Kafka lag is 5 " in decision.reason


def test_commits_during_a_lasting_lag_keep_the_run_healthy(instance, env, produced):
    """Under steady input the lag is rarely 0 between batches: commits alone keep the run alive."""
    settings = load_settings({**env, "MOVESMART_SUPERVISOR_STALL_SECONDS": "300"})
    kafka = KafkaResource(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    home = Path(env["MOVESMART_HOME"])
    _run(instance, dg.DagsterRunStatus.STARTED)
    t0 = time.time()
    partial = {t: {p: min(e, 1) for p, e in parts.items()} for t, parts in _ends(env).items()}
    state = SupervisorState()
    _commit_batch(home, 0, partial, committed_at=t0)
    assert decide(instance, settings, kafka, state, now=t0 + 1).action == "wait"
    assert state.lag_since == t0 + 1
    _commit_batch(home, 1, partial, committed_at=t0 + 250)  # a batch, but the lag remains
    assert decide(instance, settings, kafka, state, now=t0 + 500).action == "wait"
    decision = decide(instance, settings, kafka, state, now=t0 + 551)
    assert decision.action == "terminate", decision.reason
    assert "no committed batch for 301s" in decision.reason


def test_topic_lag_check_warns_after_a_few_minutes_and_fails_while_growing():
    """The verdicts of `kafka/<topic>:consumer_lag`, tick by tick (limit 100 records)."""
    from movesmart_dagster.defs.kafka.lag import WARN_AFTER_S, judge

    memory: dict = {}
    verdicts = []
    for at, lag in [
        (0, 50),
        (10, 150),
        (10 + WARN_AFTER_S - 1, 150),
        (10 + WARN_AFTER_S, 150),
        (400, 900),
        (500, 80),
    ]:
        verdict, memory = judge("gps_data", lag, float(at), 100, memory)
        verdicts.append(verdict.status)
    # a burst is not a warning; a lasting lag warns; a lasting and growing lag fails; back under: passes
    assert verdicts == ["passed", "passed", "passed", "warn", "error", "passed"]


def test_the_supervisor_reports_each_topics_lag_check(instance, env, produced, monkeypatch):
    """A real broker's lag, judged by the supervisor and recorded as the topics' check results:
    reported when the verdict changes, not every tick."""
    from movesmart_dagster.defs.kafka.lag import CHECK_NAME, WARN_AFTER_S

    for name, value in {
        "MOVESMART_LAG_WARN_RECORDS": "5",
        "MOVESMART_SUPERVISOR_STALL_SECONDS": "3600",
    }.items():
        monkeypatch.setenv(name, value)  # the sensor's resources read the process environment
        env = {**env, name: value}
    _run(instance, dg.DagsterRunStatus.STARTED)  # a healthy run that committed nothing yet: lag 20 per topic

    def results(data) -> dict[str, tuple[bool, str]]:
        return {
            e.asset_key.path[-1]: (e.passed, e.severity.value)
            for e in data.asset_events
            if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == CHECK_NAME
        }

    first = _tick(instance, env)
    assert results(first) == {t: (True, "WARN") for t in TOPICS}  # above the limit, but only just
    assert results(_tick(instance, env, first.cursor, later_s=30)) == {}  # no change: nothing reported
    late = _tick(instance, env, first.cursor, later_s=WARN_AFTER_S + 1)
    assert results(late) == {t: (False, "WARN") for t in TOPICS}, late.skip_message  # lasting, not growing
    ends = _ends(env)
    for e in late.asset_events:
        if isinstance(e, dg.AssetCheckEvaluation):
            lag = sum(ends[e.asset_key.path[-1]].values())  # nothing committed: the whole topic
            assert e.description.startswith(f"lag {lag} records, above 5 for"), e.description
