"""What one Iceberg append costs through the SQLite JDBC catalog, against a plain Parquet write.

For the benchmark only (`bench/bench_streaming.py` runs it after the jobs, in its own process).
Why: the streaming job's log gives each table's append as one figure (data files written + the
Iceberg commit); this separates them. With the job's Spark settings and catalog (settings from
the environment, like `movesmart stream`), in a scratch namespace `bench_probe` of the same
catalog, it times `rounds` appends of the same `rows` rows (the job's lineage-free shape: an id,
a device, a speed, a timestamp; partitioned by day), each:

- to one table (Python's clock around `writeTo(...).append()`), and Iceberg's own commit timer
  for it (the `CommitReport` its LoggingMetricsReporter logs: manifests, manifest list,
  metadata file and the catalog's pointer swap — what Iceberg adds after the data files);
- the same rows written as plain Parquet (`df.write.parquet`, Spark's file committer);
- six tables one after another, and side by side in six threads (what the job does per batch).

    python bench/commit_probe.py --rows 2000 --rounds 8 --out probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from movesmart_dagster.settings import load_settings  # noqa: E402
from movesmart_dagster.spark_session import build_spark  # noqa: E402
from movesmart_dagster.tables.catalog import BASE_TABLE_PROPERTIES, CATALOG_NAME  # noqa: E402

NAMESPACE = "bench_probe"
WARM_UP = 2  # untimed appends per table first (class loading, first JDBC connection)
_REPORT = re.compile(
    r"CommitReport\{tableName=[^,]*\.(\w+), .*?commitMetrics=CommitMetricsResult\{"
    r"totalDuration=TimerResult\{timeUnit=\w+, totalDuration=(PT[0-9.HMS]+)"
)


def _seconds(iso: str) -> float:
    """An ISO-8601 duration as Java prints it (PT0.123S, PT1M2.5S) in seconds."""
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", iso)
    if not m:
        raise ValueError(iso)
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    return (round(statistics.median(values), 3), round(max(values), 3)) if values else (None, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    load_1m = round(os.getloadavg()[0], 2)

    # The JVM inherits fd 2: Iceberg's metrics log lines land in this file, read at the end.
    jvm_log = tempfile.NamedTemporaryFile(prefix="commit-probe-", suffix=".log", delete=False)  # noqa: SIM115
    saved_stderr = os.dup(2)
    os.dup2(jvm_log.fileno(), 2)
    scratch: list[Path] = []
    settings = load_settings()
    spark = build_spark(settings, "movesmart-commit-probe")
    try:
        jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.iceberg.metrics.LoggingMetricsReporter", jvm.org.apache.logging.log4j.Level.INFO
        )
        props = ", ".join(f"'{k}' = '{v}'" for k, v in BASE_TABLE_PROPERTIES.items() if k != "format-version")
        names = ["one"] + [f"six_{i}" for i in range(6)]
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG_NAME}.{NAMESPACE}")
        for name in names:
            spark.sql(
                f"CREATE TABLE IF NOT EXISTS {CATALOG_NAME}.{NAMESPACE}.{name} "
                "(id BIGINT, deviceId STRING, speed DOUBLE, ts TIMESTAMP, event_date DATE) "
                f"USING iceberg PARTITIONED BY (days(ts)) TBLPROPERTIES ('format-version' = '2', {props})"
            )
        rows = spark.sql(
            f"SELECT id, concat('device-', id % 200) AS deviceId, rand() * 120 AS speed, "
            f"current_timestamp() AS ts, current_date() AS event_date FROM range({args.rows})"
        ).cache()
        rows.count()
        parquet_dir = Path(tempfile.mkdtemp(prefix="commit-probe-parquet-"))
        scratch.append(parquet_dir)

        def append(name: str) -> float:
            t0 = time.monotonic()
            rows.writeTo(f"{CATALOG_NAME}.{NAMESPACE}.{name}").append()
            return time.monotonic() - t0

        for name in names:
            for _ in range(WARM_UP):
                append(name)
        rows.write.mode("append").partitionBy("event_date").parquet(str(parquet_dir))
        one, parquet, sequential, parallel = [], [], [], []
        with ThreadPoolExecutor(max_workers=6) as pool:
            for _ in range(args.rounds):
                one.append(append("one"))
                t0 = time.monotonic()
                rows.write.mode("append").partitionBy("event_date").parquet(str(parquet_dir))
                parquet.append(time.monotonic() - t0)
                t0 = time.monotonic()
                for name in names[1:]:
                    append(name)
                sequential.append(time.monotonic() - t0)
                t0 = time.monotonic()
                list(pool.map(append, names[1:]))
                parallel.append(time.monotonic() - t0)
    finally:
        spark.stop()
        os.dup2(saved_stderr, 2)
    log_text = Path(jvm_log.name).read_text(errors="replace")
    Path(jvm_log.name).unlink()
    for path in scratch:
        shutil.rmtree(path, ignore_errors=True)
    commits = [_seconds(d) for t, d in _REPORT.findall(log_text) if t == "one"][WARM_UP:]
    result = {
        "rows": args.rows,
        "rounds": args.rounds,
        "load_1m_before": load_1m,
        "one_table": dict(
            zip(
                (
                    "append_median_s",
                    "append_max_s",
                    "commit_median_s",
                    "commit_max_s",
                    "parquet_median_s",
                    "parquet_max_s",
                ),
                (*_stats(one), *_stats(commits), *_stats(parquet)),
                strict=True,
            )
        ),
        "six_tables": dict(
            zip(
                ("sequential_median_s", "sequential_max_s", "parallel_median_s", "parallel_max_s"),
                (*_stats(sequential), *_stats(parallel)),
                strict=True,
            )
        ),
        "commit_reports_found": len(commits),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
