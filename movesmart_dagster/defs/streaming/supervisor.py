"""The supervisor: a sensor, running by default, that keeps exactly one streaming run alive.

Each tick makes one decision and says why, in the tick's skip reason and log:
- no active run                      -> launch one;
- the last run failed/was cancelled  -> relaunch, after an exponential backoff (base
  MOVESMART_SUPERVISOR_BACKOFF_SECONDS, doubled per consecutive failure, capped at
  MOVESMART_SUPERVISOR_BACKOFF_MAX_SECONDS) so a crash loop does not spin;
- a run is active but stalled        -> Kafka lag has stayed > 0 for MOVESMART_SUPERVISOR_STALL_SECONDS
  and no micro-batch was committed in that time: terminate it (the relaunch follows on a
  later tick, once it has stopped, through the backoff). The window runs from the latest of
  the last commit, the run's start and the tick that first saw the lag: an idle stream
  commits nothing (Spark runs no batch without input), so after a quiet spell longer than
  the window the first new records must not count as a stall;
- a run is active and healthy/idle   -> nothing to do;
- a run stuck in STARTING/CANCELING longer than the stall window (its worker is gone)
                                     -> mark it cancelled, relaunch after the backoff.
Lag is end offsets minus the offsets the job committed (from its progress log; Spark's
Kafka source commits no consumer-group offsets). The cursor carries the folded progress
log, the failure count, the backoff deadline and since when the lag has been > 0. Turning the sensor off stops supervision.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from movesmart_dagster.defs.kafka.lag import lag_evaluations
from movesmart_dagster.defs.keys import STREAMING_JOB_NAME
from movesmart_dagster.defs.resources import KafkaResource, SparkResource, lag_per_topic
from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.memory import return_free_memory
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.settings import Settings
from movesmart_dagster.stack.processes import platform_stopping

OBSERVE_EVERY_S = 60.0
FAILED_STATUSES = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dataclass
class SupervisorState:
    progress: dict[str, Any] = field(default_factory=dict)
    failures: int = 0  # consecutive failed/stalled runs
    next_launch_at: float = 0.0  # epoch seconds; no launch before
    seen_runs: list[str] = field(default_factory=list)  # ended runs already accounted for
    observed_at: float = 0.0  # last time the topics' end offsets were reported as observations
    observed_versions: dict[str, str] = field(default_factory=dict)  # topic -> data version
    lag_since: float | None = None  # epoch seconds of the first tick that saw lag > 0 (None: no lag)
    lag_check: dict[str, Any] = field(default_factory=dict)  # the consumer-lag checks' memory (kafka/lag.py)

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "SupervisorState":
        return cls(**json.loads(cursor)) if cursor else cls()


@dataclass
class Decision:
    action: str  # launch | wait | terminate | clear | backoff
    reason: str
    run_id: str | None = None
    lag: dict[str, int] | None = None  # per topic, when measured (a running job)
    ends: dict[str, dict[int, int]] | None = None  # the end offsets the lag was measured against


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    return 0.0 if failures <= 0 else min(cap, base * 2 ** (failures - 1))


def _end_time(instance: dg.DagsterInstance, run_id: str) -> float | None:
    record = instance.get_run_record_by_id(run_id)
    return record.end_time if record else None


def _start_time(instance: dg.DagsterInstance, run_id: str) -> float:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        return time.time()
    return record.start_time or record.create_timestamp.timestamp()


def decide(
    instance: dg.DagsterInstance,
    settings: Settings,
    kafka: KafkaResource,
    state: SupervisorState,
    now: float | None = None,
) -> Decision:
    """One supervision step; mutates `state` (the next cursor)."""
    now = time.time() if now is None else now
    progress = ProgressState.from_dict(state.progress)
    new_batches = progress.advance(settings.progress_log)
    state.progress = progress.to_dict()
    if new_batches:
        state.failures = 0  # the job commits again: forget earlier crashes

    runs = instance.get_runs(filters=dg.RunsFilter(job_name=STREAMING_JOB_NAME), limit=20)
    # account for runs that ended since the last tick (newest first in `runs`)
    newest_end: float | None = None
    for run in reversed(runs):
        if run.run_id in state.seen_runs or not run.is_finished:
            continue
        state.seen_runs = [*state.seen_runs, run.run_id][-50:]
        if run.status in FAILED_STATUSES:
            state.failures += 1
            end = _end_time(instance, run.run_id) or now
            newest_end = end if newest_end is None else max(newest_end, end)
        elif run.status == dg.DagsterRunStatus.SUCCESS:
            state.failures = 0
    if newest_end is not None:
        wait = backoff_seconds(
            state.failures, settings.supervisor_backoff_base_seconds, settings.supervisor_backoff_max_seconds
        )
        state.next_launch_at = max(state.next_launch_at, newest_end + wait)

    # every run not finished, QUEUED and NOT_STARTED included: on a busy machine a launched run
    # waits in the queue longer than a tick, and a second launch made both fail on each other
    active = [r for r in runs if not r.is_finished]
    if active:
        run = active[0]
        extra = (
            f" ({len(active) - 1} more active: {[r.run_id[:8] for r in active[1:]]})"
            if len(active) > 1
            else ""
        )
        if run.status != dg.DagsterRunStatus.STARTED:
            record = instance.get_run_record_by_id(run.run_id)
            since = now - record.update_timestamp.timestamp() if record else 0.0
            stuck = run.status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING)
            if stuck and since > settings.supervisor_stall_seconds:
                # no worker moved it on: it is dead (a killed run worker); clear it so a new one can start
                return Decision(
                    "clear",
                    f"streaming run {run.run_id[:8]} stuck in {run.status.value} for {since:.0f}s; "
                    f"marking it cancelled{extra}",
                    run.run_id,
                )
            return Decision(
                "wait", f"streaming run {run.run_id[:8]} is {run.status.value}{extra}", run.run_id
            )
        last_commit = max(progress.last_commit_ts or 0.0, _start_time(instance, run.run_id))
        quiet = now - last_commit
        try:
            ends = kafka.end_offsets(TOPICS)
        except Exception as err:  # noqa: BLE001 - an unreachable broker is no reason to kill the job
            return Decision(
                "wait", f"streaming run {run.run_id[:8]} running; Kafka lag unknown ({err})", run.run_id
            )
        lag = lag_per_topic(ends, progress.committed_offsets())
        total_lag = sum(lag.values())
        if total_lag <= 0:
            state.lag_since = None
        elif state.lag_since is None:
            state.lag_since = now  # first seen now; it appeared at most one interval earlier
        if state.lag_since is not None:
            # stalled only if the lag outlived the window with no commit since it appeared
            stalled_for = now - max(last_commit, state.lag_since)
            if stalled_for > settings.supervisor_stall_seconds:
                return Decision(
                    "terminate",
                    f"streaming run {run.run_id[:8]} stalled: Kafka lag > 0 for {now - state.lag_since:.0f}s "
                    f"and no committed batch for {quiet:.0f}s (limit {settings.supervisor_stall_seconds:.0f}s); "
                    f"Kafka lag is {total_lag} {lag}; terminating it{extra}",
                    run.run_id,
                    lag,
                    ends,
                )
        last = (
            f"last batch {progress.last_batch_id} {quiet:.0f}s ago"
            if progress.last_commit_ts
            else "no batch yet"
        )
        return Decision(
            "wait",
            f"streaming run {run.run_id[:8]} healthy: {last}, Kafka lag {total_lag}{extra}",
            run.run_id,
            lag,
            ends,
        )

    state.lag_since = None  # a new run gets a window of its own (it counts from its start)
    last_run = runs[0] if runs else None
    previous = f"last run {last_run.run_id[:8]} {last_run.status.value}" if last_run else "no run yet"
    if platform_stopping(settings.home_dir):
        # `make dev` is stopping: the run it just stopped must not be replaced behind its back
        return Decision("wait", f"the platform is stopping ({previous}): launching nothing")
    if now < state.next_launch_at:
        return Decision(
            "backoff",
            f"backing off: {state.failures} consecutive failure(s), {previous}; next launch in "
            f"{state.next_launch_at - now:.0f}s",
        )
    return Decision(
        "launch", f"no active streaming run ({previous}): launching one (attempt {state.failures + 1})"
    )


def terminate_run(instance: dg.DagsterInstance, run_id: str, log: Any) -> None:
    """Ask the run's worker to stop; if none is reachable, the run is dead: mark it cancelled."""
    try:
        delivered = instance.run_launcher.terminate(run_id)
    except Exception as err:  # noqa: BLE001
        log.warning(f"terminate {run_id[:8]} failed: {err}")
        delivered = False
    if not delivered:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(
                run, message="terminated by the supervisor (no run worker reachable)"
            )


def _topic_observations(
    kafka: KafkaResource, state: SupervisorState, log: Any, ends: dict[str, dict[int, int]] | None
) -> list[dg.AssetObservation]:
    """At most once a minute, observe the topics whose end offsets moved, from the end offsets
    this tick already fetched for the lag (one admin call when no run is active)."""
    from movesmart_dagster.defs.kafka.assets import topic_observations

    now = time.time()
    if now - state.observed_at < OBSERVE_EVERY_S:
        return []
    state.observed_at = now
    committed = ProgressState.from_dict(state.progress).committed_offsets()
    try:
        observed = topic_observations(ends if ends is not None else kafka.end_offsets(TOPICS), committed)
    except Exception as err:  # noqa: BLE001
        log.warning(f"could not observe Kafka topics: {err}")
        return []
    events = []
    for key, version, metadata in observed:
        topic = key.path[-1]
        if state.observed_versions.get(topic) == version.value:
            continue
        state.observed_versions[topic] = version.value
        events.append(
            dg.AssetObservation(
                asset_key=key, metadata=metadata, tags={"dagster/data_version": version.value}
            )
        )
    return events


def build_supervisor_sensor(
    settings: Settings, clock: Callable[[], float] = time.time
) -> dg.SensorDefinition:
    """The sensor; `clock` (epoch seconds) is injectable so tests can let time pass without sleeping."""

    @dg.sensor(
        name="streaming_supervisor",
        job_name=STREAMING_JOB_NAME,
        minimum_interval_seconds=settings.supervisor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Keeps one streaming run alive: launches, relaunches with backoff, terminates stalled runs.",
    )
    def streaming_supervisor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, spark: SparkResource
    ) -> dg.SensorResult:
        run_settings = spark.settings()
        state = SupervisorState.from_cursor(context.cursor)
        decision = decide(context.instance, run_settings, kafka, state, now=clock())
        # Dagster echoes a sensor's INFO lines in the `make dev` terminal: a healthy run's tick
        # ([wait], also the tick's skip reason in the UI) stays in the tick's log at DEBUG
        log = context.log.debug if decision.action == "wait" else context.log.info
        log(f"[{decision.action}] {decision.reason}")
        if decision.action in ("terminate", "clear") and decision.run_id:
            if decision.action == "terminate":
                terminate_run(context.instance, decision.run_id, context.log)
            else:
                run = context.instance.get_run_by_id(decision.run_id)
                if run is not None and not run.is_finished:
                    context.instance.report_run_canceled(run, message=f"supervisor: {decision.reason}")
            state.failures += 1
            state.seen_runs = [*state.seen_runs, decision.run_id][-50:]
            state.next_launch_at = clock() + backoff_seconds(
                state.failures,
                run_settings.supervisor_backoff_base_seconds,
                run_settings.supervisor_backoff_max_seconds,
            )
        events: list[Any] = _topic_observations(kafka, state, context.log, decision.ends)
        if decision.lag is not None:
            events += lag_evaluations(decision.lag, clock(), run_settings.lag_warn_records, state.lag_check)
        return_free_memory()  # the code server evaluates every sensor for days (memory.py)
        if decision.action == "launch":
            return dg.SensorResult(
                asset_events=events,
                run_requests=[
                    dg.RunRequest(
                        tags={
                            "movesmart/launched_by": "streaming_supervisor",
                            "movesmart/reason": decision.reason[:200],
                        }
                    )
                ],
                cursor=state.to_cursor(),
            )
        return dg.SensorResult(
            skip_reason=f"[{decision.action}] {decision.reason}",
            asset_events=events,
            cursor=state.to_cursor(),
        )

    return streaming_supervisor
