"""Count what Kafka holds and what the tables hold: the no-loss audit behind the fault tests
and `bench/bench_faults.py`.

Why one module: the tests and the bench ask the same two questions and must answer them the
same way. (1) Did every record the simulator sent reach Kafka exactly once? Kafka is read
back whole with a plain consumer, offset 0 to the high watermarks, and compared as a multiset
of (topic, key, value) with the records the simulator generates for the same options
(`iter_records`, byte-identical for a seed). (2) After a drain, is every Kafka offset exactly
one row, in its table or in quarantine? The tables are counted through the public
`movesmart query` command, not a reader of our own, so the audit stays valid whatever reader
backs the command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import QUARANTINE_TABLE, TABLES, TOPICS
from movesmart_dagster.settings import Settings

KafkaRecord = tuple[str, bytes | None, bytes | None]  # topic, key, value


def end_offsets(settings: Settings, timeout: float = 15.0) -> dict[tuple[str, int], int]:
    """High watermark of every partition of the five topics (topics that do not exist: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {**settings.kafka_client_config(), "group.id": f"audit-{uuid.uuid4()}", **client_logging()}
    )
    try:
        md = consumer.list_topics(timeout=timeout)
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout)[1]
            for t in TOPICS
            if t in md.topics
            for p in md.topics[t].partitions
        }
    finally:
        consumer.close()


def records_in_kafka(settings: Settings, timeout: float = 60.0) -> int:
    """Records the five topics hold now; asked again while a partition has no leader (just
    created, or its leader just died), up to `timeout`."""
    return sum(settled_end_offsets(settings, timeout).values())


def settled_end_offsets(settings: Settings, timeout: float = 60.0) -> dict[tuple[str, int], int]:
    """End offsets asked again while a partition has no leader (its leader just died or moved)."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            return end_offsets(settings, timeout=5)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def read_all(settings: Settings, timeout: float = 120.0) -> list[KafkaRecord]:
    """Every record of the five topics below their high watermarks, read until the watermarks
    are the same after the read as before it.

    Why read twice: a leader elected moments ago (the preferred leader taking a partition back
    after a restart) may report its high watermark a fetch round late, so one look at the
    watermarks can stop short of the last acknowledged records. Reading again until the
    watermarks stand still makes the audit count what Kafka holds, not a transient view of it."""
    deadline = time.monotonic() + timeout
    while True:
        ends = settled_end_offsets(settings)
        records = _read_below(settings, {tp: end for tp, end in ends.items() if end > 0}, deadline)
        if settled_end_offsets(settings) == ends:
            return records
        if time.monotonic() > deadline:
            raise RuntimeError(f"the high watermarks kept moving for {timeout:.0f}s")


def _read_below(settings: Settings, ends: dict[tuple[str, int], int], deadline: float) -> list[KafkaRecord]:
    from confluent_kafka import Consumer, TopicPartition

    if not ends:
        return []
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"audit-{uuid.uuid4()}",
            "enable.auto.commit": False,
            **client_logging(),
        }
    )
    consumer.assign([TopicPartition(t, p, 0) for (t, p) in ends])
    records: list[KafkaRecord] = []
    need = sum(ends.values())
    seen = 0
    try:
        while seen < need and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=10_000, timeout=1.0):
                if m.error() is not None:
                    raise RuntimeError(f"reading {m.topic()}: {m.error()}")
                if m.offset() < ends[(m.topic(), m.partition())]:
                    records.append((m.topic(), m.key(), m.value()))
                    seen += 1
    finally:
        consumer.close()
    if seen < need:
        raise RuntimeError(f"read {seen} of {need} records before the deadline")
    return records


@dataclass(frozen=True)
class KafkaAudit:
    """What Kafka holds against what was sent: `lost` sent but absent, `doubled` present more
    often than sent (or never sent)."""

    sent: int
    in_kafka: int
    lost: int
    doubled: int
    per_topic: dict[str, int] = field(default_factory=dict)
    lost_per_topic: dict[str, int] = field(default_factory=dict)
    doubled_per_topic: dict[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()  # a few lost or doubled records, for the failure message

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.sent == self.in_kafka


def audit_kafka(settings: Settings, sent: Iterable[KafkaRecord]) -> KafkaAudit:
    """Compare every record in Kafka with the records that were sent, as multisets."""
    found = Counter(read_all(settings))
    wanted = Counter(sent)
    lost, doubled = wanted - found, found - wanted

    def by_topic(records: Counter) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (topic, _, _), n in records.items():
            totals[topic] += n
        return dict(totals)

    return KafkaAudit(
        sent=sum(wanted.values()),
        in_kafka=sum(found.values()),
        lost=sum(lost.values()),
        doubled=sum(doubled.values()),
        per_topic=by_topic(found),
        lost_per_topic=by_topic(lost),
        doubled_per_topic=by_topic(doubled),
        examples=tuple(
            f"{kind} x{n}: {topic} key={key!r} value={(value or b'')[:160]!r}"
            for kind, records in (("lost", lost), ("doubled", doubled))
            for (topic, key, value), n in list(records.items())[:5]
        ),
    )


def partition_leaders(settings: Settings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Leader node id of each partition of `topic` (-1 while a partition has none)."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({**settings.kafka_client_config(), **client_logging()}).list_topics(timeout=timeout)
    return {p: meta.leader for p, meta in md.topics[topic].partitions.items()}


def replica_state(settings: Settings, timeout: float = 10.0) -> dict[tuple[str, int], tuple[int, int]]:
    """(replicas, in-sync replicas) of every partition of the five topics."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({**settings.kafka_client_config(), **client_logging()}).list_topics(timeout=timeout)
    return {
        (t, p): (len(meta.replicas), len(meta.isrs))
        for t in TOPICS
        if t in md.topics
        for p, meta in md.topics[t].partitions.items()
    }


@dataclass(frozen=True)
class TableAudit:
    """Kafka's offsets against the rows of the tables and quarantine, per topic and in all.

    `lost`: offsets below a partition's high watermark with no row; `doubled`: rows beyond the
    first of an offset; `beyond`: partitions with a row at an offset Kafka never had (must be 0)."""

    in_kafka: int
    rows: int
    quarantined: int
    lost: int
    doubled: int
    beyond: int
    per_topic: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.beyond == 0 and self.rows == self.in_kafka


def _offsets_sql() -> str:
    parts = [f"select kafka_topic, kafka_partition, kafka_offset, 0 as q from {t}" for t in TABLES]
    parts.append(f"select kafka_topic, kafka_partition, kafka_offset, 1 as q from {QUARANTINE_TABLE}")
    return (
        "select kafka_topic, kafka_partition, count(*) as row_count, "
        "count(distinct kafka_offset) as distinct_offsets, max(kafka_offset) as max_offset, "
        "sum(q) as quarantined from (" + " union all ".join(parts) + ") group by 1, 2"
    )


def query_cli(env: dict[str, str], sql: str, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Rows of `movesmart query SQL --format json`, run as its own process with `env`."""
    proc = subprocess.run(
        [sys.executable, "-m", "movesmart_dagster.cli", "query", sql, "--format", "json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"movesmart query failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


def audit_tables(settings: Settings, env: dict[str, str]) -> TableAudit:
    """Every Kafka offset against the rows `movesmart query` sees (run with `env`)."""
    ends = end_offsets(settings)
    seen = {(r["kafka_topic"], int(r["kafka_partition"])): r for r in query_cli(env, _offsets_sql())}
    per_topic: dict[str, dict[str, int]] = {
        t: {"in_kafka": 0, "rows": 0, "quarantined": 0, "lost": 0, "doubled": 0, "beyond": 0} for t in TOPICS
    }
    for tp in set(ends) | set(seen):
        topic, end = tp[0], ends.get(tp, 0)
        row = seen.get(tp, {"row_count": 0, "distinct_offsets": 0, "max_offset": -1, "quarantined": 0})
        counts = per_topic.setdefault(topic, dict.fromkeys(per_topic[TOPICS[0]], 0))
        distinct = int(row["distinct_offsets"])
        max_offset = -1 if row["max_offset"] is None else int(row["max_offset"])
        beyond = max_offset >= end  # a row naming an offset Kafka never had
        counts["in_kafka"] += end
        counts["rows"] += int(row["row_count"])
        counts["quarantined"] += int(row["quarantined"] or 0)
        counts["doubled"] += int(row["row_count"]) - distinct
        # with no offset beyond the watermark, the distinct offsets are a subset of [0, end)
        counts["lost"] += end - distinct if not beyond else end
        counts["beyond"] += int(beyond)
    total = {k: sum(c[k] for c in per_topic.values()) for k in per_topic[TOPICS[0]]}
    return TableAudit(
        in_kafka=total["in_kafka"],
        rows=total["rows"],
        quarantined=total["quarantined"],
        lost=total["lost"],
        doubled=total["doubled"],
        beyond=total["beyond"],
        per_topic=per_topic,
    )
