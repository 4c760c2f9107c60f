"""`streaming_job`: one long-running Dagster run that owns the Spark streaming job.

The op starts `python -m movesmart_dagster.streaming.job` as a child process, tails the
progress log every second and logs per-partition `AssetMaterialization`s of the tables,
coalesced: at most one per (table, day) per MOVESMART_MATERIALIZATION_INTERVAL_SECONDS, a
day's first rows at once (`materializations.py`); what is pending when the job ends is
reported then.
Terminating the run (UI, supervisor) interrupts the op, which forwards SIGTERM to the
job (it stops after the current batch), waits, and kills what is left of its process group;
the run ends CANCELED — or SUCCESS when `make dev` stops it for a shutdown (a run tag says so).
The run uses the in-process executor so the interrupt reaches this op directly. An interrupt
is also remembered by the op (`remembered_interrupts`): one that lands while Dagster writes an
event can be swallowed there, and the op then raises it at its next turn.
"""

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg

from movesmart_dagster.defs.keys import STOP_REASON_SHUTDOWN, STOP_REASON_TAG, STREAMING_JOB_NAME
from movesmart_dagster.defs.resources import KafkaResource, SparkResource
from movesmart_dagster.defs.streaming.materializations import PartitionCoalescer, report_due
from movesmart_dagster.defs.streaming.process import SupervisedProcess
from movesmart_dagster.defs.streaming.progress_state import ProgressState
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.tables.partition_facts import IsolatedPartitionFacts


class StreamingConfig(dg.Config):
    trigger_interval: str | None = None  # default: MOVESMART_STREAM_TRIGGER_INTERVAL
    max_offsets_per_trigger: int | None = None
    available_now: bool = False  # process what is in Kafka, then finish (backfills, tests)
    stop_timeout_s: float = 90.0
    poll_interval_s: float = 1.0
    # default: MOVESMART_MATERIALIZATION_INTERVAL_SECONDS
    materialization_interval_s: float | None = None


@dg.op(
    name="run_streaming_job",
    description="Run the Spark streaming job as a child process and report each committed batch.",
    tags={"kind": "spark"},
)
def run_streaming_job(
    context: dg.OpExecutionContext, config: StreamingConfig, kafka: KafkaResource, spark: SparkResource
) -> None:
    settings = spark.settings()
    # one streaming job per checkpoint: a second one (a manual launch beside the supervisor's) would race it
    others = [
        r.run_id[:8]
        for r in context.instance.get_runs(filters=dg.RunsFilter(job_name=STREAMING_JOB_NAME), limit=100)
        if r.run_id != context.run_id and not r.is_finished
    ]
    if others:
        raise dg.Failure(
            description=f"another streaming run is active ({', '.join(others)}); not starting a second"
        )
    created = kafka.ensure_topics(TOPICS)
    if created:
        context.log.info(f"created topics {created}")
    log_path = settings.progress_log
    state = ProgressState.load(log_path)  # totals so far; only batches after this point are reported
    interval = (
        config.materialization_interval_s
        if config.materialization_interval_s is not None
        else settings.materialization_interval_seconds
    )
    coalescer = PartitionCoalescer(interval, time.monotonic)
    read_facts = IsolatedPartitionFacts(settings)  # metadata parses in a child (partition_facts.py)
    cmd = spark.streaming_command(
        config.trigger_interval or settings.stream_trigger_interval,
        config.max_offsets_per_trigger,
        config.available_now,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    child = SupervisedProcess(
        cmd, spark.child_env(), settings.home_dir / "streaming" / "logs" / f"{stamp}-{context.run_id[:8]}.log"
    ).start()
    context.log.info(f"streaming job started pid={child.pid}: {' '.join(cmd)} (output: {child.log_file})")

    def report(final: bool = False) -> int:
        batches = state.advance(log_path)
        coalescer.add(batches)
        for mat in report_due(coalescer, read_facts, context.log, flush_all=final):
            context.log_event(mat)  # in the event log from here (Dagster writes it as it is made)
        # Dagster also keeps each logged event until the op returns, to yield it then: an op that
        # runs for days would hold every materialization (a soak's run worker grew ~1 MB a minute)
        for _ in context.consume_events():
            pass
        return len(batches)

    reported = 0
    try:
        with remembered_interrupts() as interrupted:
            while True:
                if interrupted.is_set():
                    raise dg.DagsterExecutionInterruptedError()
                reported += report()
                rc = child.returncode()
                if rc is not None:
                    reported += report(final=True)  # the last batch may land just before exit
                    if rc != 0:
                        raise dg.Failure(
                            description=f"streaming job exited with status {rc}",
                            metadata={"output (tail)": dg.MetadataValue.md(f"```\n{child.tail()}\n```")},
                        )
                    context.log.info(f"streaming job finished after {reported} batches")
                    return
                time.sleep(config.poll_interval_s)
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
        shutdown = _stopped_for_shutdown(context)
        if not shutdown:
            _mark_deliberate_stop(context)
        context.log.info("termination requested: SIGTERM to the streaming job, waiting for its current batch")
        _stop(child, config.stop_timeout_s)
        reported += report(final=True)
        context.log.info(f"streaming job stopped (status {child.returncode()}) after {reported} batches")
        if shutdown:
            return  # it ran until the platform stopped: a success, and no interrupt stack in the terminal
        raise
    finally:
        _stop(child, config.stop_timeout_s)
        read_facts.close()


@contextmanager
def remembered_interrupts() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event, then go on to Dagster's handler (which raises in the op).

    Why: an interrupt landing while Dagster writes an event (a materialization) can be
    swallowed inside Dagster — in an experiment, 1 of 15 SIGINTs sent to a run worker logging
    materializations in a loop never reached the op, and the run went on; with the event,
    0 of 25. Only handlers that are Python callables are wrapped (in the main thread)."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def remember(signo: int, frame: object) -> None:
        interrupted.set()
        handler = previous[signo]
        if callable(handler):
            handler(signo, frame)

    wrapped = [sig for sig, handler in previous.items() if callable(handler)]
    for sig in wrapped:
        signal.signal(sig, remember)
    try:
        yield interrupted
    finally:
        for sig in wrapped:
            signal.signal(sig, previous[sig])


def _stopped_for_shutdown(context: dg.OpExecutionContext) -> bool:
    """`make dev` tags the run before it terminates it on Ctrl-C (see `movesmart_dagster.dev`)."""
    run = context.instance.get_run_by_id(context.run_id)
    return run is not None and run.tags.get(STOP_REASON_TAG) == STOP_REASON_SHUTDOWN


def _mark_deliberate_stop(context: dg.OpExecutionContext) -> None:
    """An interrupt is always someone stopping the run: end it CANCELED, never FAILURE.

    *Terminate* (UI, supervisor) marks the run CANCELING before the interrupt arrives. A signal
    to the run worker (Ctrl-C of `make dev`/`dagster dev`, SIGTERM from a service manager)
    arrives with the run still STARTED, and Dagster would then record "interrupted
    unexpectedly ... treating as failure" — a false "run failed" alert. A crash never reaches
    here (it is an exception, or a SIGKILL nobody can catch), so marking it CANCELING is honest.
    """
    run = context.instance.get_run_by_id(context.run_id)
    if run is not None and run.status == dg.DagsterRunStatus.STARTED:
        context.instance.report_run_canceling(
            run, message="the run worker was interrupted (SIGINT/SIGTERM): stopping the streaming job"
        )


def _stop(child: SupervisedProcess, timeout: float) -> None:
    """Stop the child even if further interrupts arrive while we wait for it."""
    deadline = time.monotonic() + timeout + 60
    while time.monotonic() < deadline:
        try:
            child.stop(timeout=max(1.0, deadline - time.monotonic() - 60))
            return
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            continue


@dg.job(
    name=STREAMING_JOB_NAME,
    description="The long-running Spark Structured Streaming job (Kafka -> tables), supervised by a sensor.",
    executor_def=dg.in_process_executor,
    tags={"movesmart/role": "streaming"},
)
def streaming_job() -> None:
    run_streaming_job()
