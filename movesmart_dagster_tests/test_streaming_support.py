"""Helpers for the streaming tests: run the real job and simulator, read what landed.

Nothing is mocked: the job runs as `movesmart stream` in a subprocess against a real
broker, and what landed is read back through DuckDB (`movesmart_dagster.tables`), the
way a reader that lists files sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

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
    admin = AdminClient(settings.kafka_client_config())
    md = admin.list_topics(timeout=10)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "offsets-probe"})
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
    """(id, kafka_topic, kafka_partition, kafka_offset) of every row a file-listing reader sees."""
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


def visible_junk(settings: Settings) -> list[str]:
    """Files a lister would see under a table that are not final data files."""
    root = Path(settings.warehouse.removeprefix("file://"))
    junk = []
    for table_dir in root.iterdir():
        if table_dir.name.startswith(("_", ".")):
            continue
        for p in table_dir.rglob("*"):
            rel = p.relative_to(table_dir).parts
            if any(part.startswith(("_", ".")) for part in rel):
                continue
            if p.is_file() and not (
                len(rel) == 2 and rel[0].startswith("event_date=") and p.suffix == ".parquet"
            ):
                junk.append(str(p))
    return junk
