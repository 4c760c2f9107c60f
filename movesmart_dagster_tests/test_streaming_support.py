"""Helpers for the streaming tests: run the real job and simulator, read what landed.

Nothing is mocked: the job runs as `movesmart stream` in a subprocess against a real
broker, and what landed is read back through the Iceberg catalog: by DuckDB over
pyiceberg's scan plan (`movesmart_dagster.tables`, what `movesmart query` reads), by
pyiceberg itself, and by Spark's Iceberg catalog in a process of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import QUARANTINE_TABLE, TABLES, TOPICS
from movesmart_dagster.settings import Settings

REPO = Path(__file__).resolve().parent.parent
MOVESMART = [sys.executable, "-m", "movesmart_dagster.cli"]
SPARK_ENV = {"MOVESMART_SPARK_MASTER": "local[2]", "MOVESMART_SPARK_DRIVER_MEMORY": "1g"}


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MOVESMART, *args],
        env={**os.environ, **SPARK_ENV, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def simulate(env: dict[str, str], *args: str) -> dict:
    """`movesmart simulate ... --rate 0`; returns its summary."""
    import json
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        proc = run_cli(
            env, "simulate", "--rate", "0", "--no-progress", "--summary-json", fh.name, *args, timeout=300
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(Path(fh.name).read_text())


def end_offsets(settings: Settings) -> dict[str, dict[int, int]]:
    """High watermarks per topic and partition (every offset below was produced)."""
    admin = AdminClient({**settings.kafka_client_config(), **client_logging()})
    md = admin.list_topics(timeout=10)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "offsets-probe", **client_logging()})
    out: dict[str, dict[int, int]] = {}
    try:
        for topic in TOPICS:
            if topic not in md.topics:
                out[topic] = {}
                continue
            out[topic] = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in md.topics[topic].partitions
            }
    finally:
        consumer.close()
    return out


def landed(settings: Settings) -> dict[str, list[tuple]]:
    """(id, kafka_topic, kafka_partition, kafka_offset) of every row of each table's current
    snapshot, as `movesmart query` reads it (DuckDB over pyiceberg's scan plan)."""
    from movesmart_dagster.tables import connect

    con = connect(settings)
    try:
        out = {
            t: con.execute(f"select id, kafka_topic, kafka_partition, kafka_offset from {t}").fetchall()
            for t in TABLES
        }
        out[QUARANTINE_TABLE] = con.execute(
            "select null, kafka_topic, kafka_partition, kafka_offset from quarantine"
        ).fetchall()
        return out
    finally:
        con.close()


def landed_by_pyiceberg(settings: Settings) -> dict[str, list[tuple]]:
    """The same rows as `landed`, read by pyiceberg's own reader (`scan().to_arrow()`)."""
    from movesmart_dagster.tables.catalog import load_catalog, load_table

    catalog = load_catalog(settings)
    out: dict[str, list[tuple]] = {}
    for table in (*TABLES, QUARANTINE_TABLE):
        fields = ("kafka_topic", "kafka_partition", "kafka_offset")
        fields = ("id", *fields) if table != QUARANTINE_TABLE else fields
        rows = load_table(settings, table, catalog).scan(selected_fields=fields).to_arrow().to_pylist()
        out[table] = [(r.get("id"), r["kafka_topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows]
    return out


_SPARK_READ = """
import json, sys
from movesmart_dagster.settings import load_settings
from movesmart_dagster.spark_session import build_spark
from movesmart_dagster.tables.catalog import spark_table
from movesmart_dagster.schemas import ALL_TABLES
settings = load_settings()
spark = build_spark(settings, "test-read")
out = {}
for t in ALL_TABLES:
    row = spark.sql(
        f"select count(*) n, count(distinct kafka_topic, kafka_partition, kafka_offset) d, "
        f"coalesce(sum(kafka_offset), 0) s from {spark_table(settings, t)}"
    ).first()
    out[t] = [row.n, row.d, int(row.s)]
spark.stop()
print("RESULT " + json.dumps(out))
"""


def landed_by_spark(env: dict[str, str]) -> dict[str, list[int]]:
    """Per table, through Spark's Iceberg catalog in its own process: [rows, distinct Kafka
    records, sum of offsets]."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _SPARK_READ],
        env={**os.environ, **SPARK_ENV, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def check_readers_agree(env: dict[str, str], settings: Settings) -> None:
    """DuckDB (scan plan), pyiceberg and Spark read the same rows from every table."""
    duck = landed(settings)
    ice = landed_by_pyiceberg(settings)
    spark = landed_by_spark(env)
    for table, rows in duck.items():
        assert sorted(rows, key=repr) == sorted(ice[table], key=repr), table
        keys = {(r[1], r[2], r[3]) for r in rows}
        assert spark[table] == [len(rows), len(keys), sum(r[3] for r in rows)], table


def check_no_duplicates(rows: dict[str, list[tuple]]) -> None:
    """No Kafka record twice, no record id twice in a table."""
    seen = Counter((r[1], r[2], r[3]) for table_rows in rows.values() for r in table_rows)
    dupes = [k for k, n in seen.items() if n > 1]
    assert not dupes, f"{len(dupes)} Kafka records seen more than once, e.g. {dupes[:3]}"
    for table in TABLES:
        ids = Counter(r[0] for r in rows[table])
        assert not [i for i, n in ids.items() if n > 1], f"duplicate ids in {table}"


def check_exact(settings: Settings) -> dict[str, tuple[int, int]]:
    """Every offset Kafka holds is exactly one row, in its table or in quarantine.

    Returns {topic: (rows, quarantined)}.
    """
    rows = landed(settings)
    check_no_duplicates(rows)
    counts: dict[str, tuple[int, int]] = {}
    for topic, parts in end_offsets(settings).items():
        expected = {(p, o) for p, end in parts.items() for o in range(end)}
        good = {(r[2], r[3]) for r in rows[topic]}
        bad = {(r[2], r[3]) for r in rows[QUARANTINE_TABLE] if r[1] == topic}
        assert not good & bad, f"{topic}: records both landed and quarantined"
        missing, extra = expected - (good | bad), (good | bad) - expected
        assert not missing and not extra, f"{topic}: {len(missing)} offsets missing, {len(extra)} unexpected"
        counts[topic] = (len(good), len(bad))
    return counts


def batches_committed_twice(settings: Settings) -> list[tuple[str, str, str]]:
    """(table, query id, batch id) of every batch that more than one snapshot of a table carries:
    the exactly-once promise of the snapshots themselves (a re-run batch must skip the tables
    that hold it)."""
    from movesmart_dagster.streaming.commits import BATCH_ID_PROPERTY, QUERY_ID_PROPERTY
    from movesmart_dagster.tables.catalog import load_catalog, load_table

    catalog = load_catalog(settings)
    twice = []
    for table in (*TABLES, QUARANTINE_TABLE):
        seen = Counter(
            (
                s.summary.additional_properties.get(QUERY_ID_PROPERTY),
                s.summary.additional_properties.get(BATCH_ID_PROPERTY),
            )
            for s in load_table(settings, table, catalog).snapshots()
            if s.summary and s.summary.additional_properties.get(BATCH_ID_PROPERTY) is not None
        )
        twice += [(table, q, b) for (q, b), n in seen.items() if n > 1]
    return twice
