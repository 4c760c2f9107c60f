"""`streaming_job`: one long-running Dagster run that owns the Spark streaming job.

The op starts `python -m movesmart_dagster.streaming.job` as a child process, tails the
progress log every second and logs one `AssetMaterialization` per table per committed
micro-batch (rows added, running total, Kafka offset ranges, batch id, freshness lag,
partitions), so the asset catalog follows the stream within one trigger interval.
Terminating the run (UI, supervisor) interrupts the op, which forwards SIGTERM to the
job (it stops after the current batch), waits, and kills what is left of its process group.
The run uses the in-process executor so the interrupt reaches this op directly.
"""

import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from movesmart_dagster.defs.keys import STREAMING_JOB_NAME, TABLE_KEYS
from movesmart_dagster.defs.resources import KafkaResource, SparkResource
from movesmart_dagster.defs.streaming.process import SupervisedProcess
from movesmart_dagster.defs.streaming.progress_state import ProgressState, parse_time
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.streaming.progress import BatchProgress


class StreamingConfig(dg.Config):
    trigger_interval: str | None = None  # default: MOVESMART_STREAM_TRIGGER_INTERVAL
    max_offsets_per_trigger: int | None = None
    available_now: bool = False  # process what is in Kafka, then finish (backfills, tests)
    stop_timeout_s: float = 90.0
    poll_interval_s: float = 1.0


def batch_materializations(batch: BatchProgress, state: ProgressState) -> list[dg.AssetMaterialization]:
    """One materialization per table that received rows in this batch."""
    out = []
    committed = parse_time(batch.committed_at)
    for table, tp in sorted(batch.tables.items()):
        key = TABLE_KEYS.get(table)
        if key is None or tp.rows <= 0:
            continue
        metadata: dict[str, Any] = {
            "rows_added": tp.rows,
            "total_rows": state.totals.get(table, tp.rows),
            "dagster/row_count": state.totals.get(table, tp.rows),
            "batch_id": batch.batch_id,
            "quarantined": tp.quarantined,
            "offsets": dg.MetadataValue.json({p: list(r) for p, r in sorted(tp.offsets.items())}),
            "partitions": ", ".join(tp.partitions),
            "batch_duration_ms": batch.duration_ms,
        }
        if tp.freshness_lag_s is not None:
            metadata["freshness_lag_s"] = float(tp.freshness_lag_s)
        if tp.newest_event_at:
            metadata["newest_event_at"] = tp.newest_event_at
        if committed is not None:
            metadata["committed_at"] = dg.MetadataValue.timestamp(committed)
            metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(committed)
        out.append(
            dg.AssetMaterialization(asset_key=key, description=f"batch {batch.batch_id}", metadata=metadata)
        )
    return out


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
        for r in context.instance.get_runs(
            filters=dg.RunsFilter(job_name=STREAMING_JOB_NAME, statuses=list(IN_PROGRESS_RUN_STATUSES))
        )
        if r.run_id != context.run_id
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

    def report() -> int:
        batches = state.advance(log_path)
        for batch in batches:
            for mat in batch_materializations(batch, state):
                context.log_event(mat)
        return len(batches)

    reported = 0
    try:
        while True:
            reported += report()
            rc = child.returncode()
            if rc is not None:
                reported += report()  # the last batch may land just before exit
                if rc != 0:
                    raise dg.Failure(
                        description=f"streaming job exited with status {rc}",
                        metadata={"output (tail)": dg.MetadataValue.md(f"```\n{child.tail()}\n```")},
                    )
                context.log.info(f"streaming job finished after {reported} batches")
                return
            time.sleep(config.poll_interval_s)
    except (DagsterExecutionInterruptedError, KeyboardInterrupt):
        context.log.info("termination requested: SIGTERM to the streaming job, waiting for its current batch")
        _stop(child, config.stop_timeout_s)
        reported += report()
        context.log.info(f"streaming job stopped (status {child.returncode()}) after {reported} batches")
        raise
    finally:
        _stop(child, config.stop_timeout_s)


def _stop(child: SupervisedProcess, timeout: float) -> None:
    """Stop the child even if further interrupts arrive while we wait for it."""
    deadline = time.monotonic() + timeout + 60
    while time.monotonic() < deadline:
        try:
            child.stop(timeout=max(1.0, deadline - time.monotonic() - 60))
            return
        except (DagsterExecutionInterruptedError, KeyboardInterrupt):
            continue


@dg.job(
    name=STREAMING_JOB_NAME,
    description="The long-running Spark Structured Streaming job (Kafka -> tables), supervised by a sensor.",
    executor_def=dg.in_process_executor,
    tags={"movesmart/role": "streaming"},
)
def streaming_job() -> None:
    run_streaming_job()
