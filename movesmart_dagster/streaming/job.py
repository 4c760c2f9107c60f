"""The Spark Structured Streaming job: Kafka -> validated, day-partitioned Iceberg tables.

Run it as `movesmart stream`, `python -m movesmart_dagster.streaming.job` or
`spark-submit --jars <.jars/spark/*> movesmart_dagster/streaming/job.py` (same flags).

Design, and why:
- ONE streaming query, one checkpoint, one Kafka source subscribed to the five topics
  (one offset fetch per trigger, one scan). A failure anywhere fails the query and the
  process (exit 1) — the seed ran five queries and waited on the last, so a dead query
  went unnoticed.
- Validation at the edge (`validation/`), in two passes. In the streaming plan, a Java
  UDF (`io.movesmart.spark.FastContract`, jvm/spark-contract) reads each record once and
  returns its typed values when it is plainly valid; everything else (broken, odd or
  merely unusual) is marked `_exact`. In `foreachBatch`, those rows are judged by the
  contract itself, `contract.validate` on the driver, in chunks of at most
  `MOVESMART_DRIVER_VALIDATION_MAX_ROWS` — while the tables whose topic had no such rows
  are already being written (the second pass has its own scheduler pool, so its small jobs
  do not queue behind the writes); a table with rows of both passes is one append of both.
  A test runs one corpus through both passes and the reference. Every Kafka
  record becomes exactly one row: in its table (typed columns + lineage `kafka_topic,
  kafka_partition, kafka_offset, kafka_timestamp, ingested_at`) or in `quarantine` (the
  bytes as received and a reason `code: detail`). Valid rows are partitioned by the
  event's UTC date, quarantined rows by the date of their Kafka timestamp (deterministic
  on a re-run).
- Each batch is read from Kafka once and cached, narrow: the fast path's values stay one
  struct per table until after the cache (`validation.fast_path.unpack`), ~110 bytes per record.
  Every cached partition holds one topic partition, so each table's write skips the
  other topics' partitions by the cache's column statistics. Bigger batches pay the
  per-batch planning less often: the default cap (`options.DEFAULT_MAX_OFFSETS`) is sized to
  the cache, not to the trigger.
- `foreachBatch` commits each batch to each table as ONE Iceberg append (`commits.TableCommits`),
  the tables side by side in threads (a commit through the catalog costs ~0.3 s; six in a
  row would add seconds to every batch). Each append carries the streaming query id and
  the batch id as snapshot summary properties (`movesmart.query-id`, `movesmart.batch-id`).
  Spark re-runs a batch it did not record as committed with the same offsets, so after a
  crash the re-run looks at each table's snapshot history and skips the tables that
  already hold (query id, batch id): every Kafka record lands exactly once. Files an
  interrupted attempt wrote belong to no snapshot: no reader sees them.
- Progress: after every table's commit, one JSON line per batch in `settings.progress_log`
  (`progress.py`), which the Dagster run supervising the job tails.
- Operation: `--trigger-interval` (default MOVESMART_STREAM_TRIGGER_INTERVAL, 2 seconds), `--max-offsets-per-trigger`
  (all topics together), `--available-now` drains what Kafka holds and exits 0;
  SIGTERM/SIGINT stop the query between batches (a batch caught mid-way is re-run on the
  next start, harmlessly). A new checkpoint starts from the earliest offsets.
- Fault injection for tests (`faults.py`): `MOVESMART_FAULT_POINT=<point>:batch=<id>`
  kills the driver's JVM and the Python process with SIGKILL at `start`, `mid_write` (a
  write task's files are on disk, no table committed yet), `after_first_table` (one table committed, the others
  under way) or `after_commit` (every table committed, before Spark's own commit) of that
  batch (or of every batch with `batch=*`).

This module is only the command line; the job is in modules with one reason to change
each: `options` (run options, shared with `movesmart stream`), `source` (Spark settings,
the Kafka source), `query` (the query's lifecycle, exit status), `micro_batch` (the
foreachBatch body), `commits` (exactly-once appends), `batch_report` (a batch's stats,
progress line and log line), `projection` (routed rows -> a table's columns),
`validation/` (the two passes), `faults` (fault injection), `failure` (a failed query in one line), `joblog` (the log lines).
"""

from __future__ import annotations

import argparse
import os
import sys

from movesmart_dagster.settings import SettingsError, load_settings
from movesmart_dagster.streaming.faults import FAULT_ENV, Fault
from movesmart_dagster.streaming.options import DEFAULT_MAX_OFFSETS, JobOptions, check_interval, parse_conf
from movesmart_dagster.streaming.query import run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movesmart-stream", description=__doc__.splitlines()[0])
    p.add_argument(
        "--trigger-interval",
        default=None,
        help="micro-batch interval, e.g. '2 seconds' (default: MOVESMART_STREAM_TRIGGER_INTERVAL)",
    )
    p.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        default=DEFAULT_MAX_OFFSETS,
        help=f"cap of records per batch (default {DEFAULT_MAX_OFFSETS:,}; 0: no cap)",
    )
    p.add_argument("--available-now", action="store_true", help="drain what Kafka holds now, then exit 0")
    p.add_argument("--checkpoint", default=None, help="checkpoint URI (default: <checkpoint root>/stream)")
    p.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="a Spark setting on top (repeatable)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        options = JobOptions(
            trigger_interval=check_interval(args.trigger_interval or settings.stream_trigger_interval),
            max_offsets_per_trigger=args.max_offsets_per_trigger,
            available_now=args.available_now,
            checkpoint=args.checkpoint,
            spark_conf=parse_conf(args.conf),
        )
        Fault(os.environ.get(FAULT_ENV))  # validate early
    except SettingsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return run(settings, options)


if __name__ == "__main__":
    sys.exit(main())
