"""Drive the fleet into Kafka: fast, without loss or duplicates, honest about failures.

Why these producer settings:
- `enable.idempotence` + `acks=all`: the broker de-duplicates retried batches by producer
  id and sequence number, so a broker restart mid-run loses nothing and duplicates
  nothing; `message.timeout.ms` (default 5 minutes) lets queued records wait out the
  restart instead of failing after librdkafka's default.
- `max.in.flight.requests.per.connection=1`: with more, a batch sent right after one the broker
  refused (`UNKNOWN_TOPIC_OR_PARTITION` / `NOT_LEADER_OR_FOLLOWER` while a new topic's or a moved
  partition's leader takes over) can be accepted, because a leader that holds no state for this
  producer takes any sequence number; librdkafka then acknowledges the refused batch too
  ("implicitly acked by subsequent batch success") and its records are lost. Seen in the kill -9
  test: the first 2-3 emergency records of a fresh topic, ~1 run in 6. One request in flight costs
  nothing measurable here (`max.in.flight` 1 vs 5: 289k vs 285k events/s on one broker).
- `linger.ms`, a 1 MB `batch.size`, lz4 compression and a deep local queue: records leave
  in large compressed batches, so the whole process sustains >100k events/s on 2 cores.
- `delivery.report.only.error` (`run_producer_config`): the delivery callback runs only for
  failures, so success costs no Python per record; after `flush()` returns 0, produced - failed
  were acked. Records are counted per tick, not per record: at `--rate 0` the loop does nothing
  per record but the `produce` call, like a plain produce loop (`bench/bench_simulator.py`).
- librdkafka's own log lines go to a Python logger (`kafka_log.py`): warnings and errors only,
  everything with `-v`. The start-up check's connection retries are never served, so an
  unreachable broker is one clear line, not a screen of them.
Record timestamps in Kafka stay the wall clock (the event time is in the payload): old
simulated days must not be deleted at once by time-based retention.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from movesmart_dagster.kafka_log import KAFKA_LOG as _KAFKA_ROOT_LOG
from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import TOPICS
from movesmart_dagster.settings import Settings
from movesmart_dagster.simulator.fleet import Fleet, SimConfig

# the simulator's clients: warnings and up reach Python logging (stderr); `-v` lowers the level
KAFKA_LOG = _KAFKA_ROOT_LOG.getChild("simulator")

DEFAULT_CONNECT_TIMEOUT_S = 15.0
DEFAULT_DELIVERY_TIMEOUT_S = 300.0


class BrokerUnreachable(RuntimeError):
    """No broker answered within the connect timeout; the message is one line."""


@dataclass
class RunSummary:
    """What a run produced; `ok` is False if any record was not acknowledged."""

    produced: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    failed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOPICS, 0))
    undelivered: int = 0  # still queued when the flush gave up
    defects: dict[str, int] = field(default_factory=dict)  # malformed on purpose, by reason code
    elapsed_s: float = 0.0
    stop_reason: str = "arrived"  # arrived | max_events | duration | interrupted | fatal_error
    vehicles: int = 0
    arrived: int = 0
    first_error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.produced.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values()) + self.undelivered

    @property
    def delivered(self) -> int:
        return self.total - self.failed_total

    @property
    def malformed(self) -> int:
        return sum(self.defects.values())

    @property
    def events_per_s(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed_total == 0 and self.stop_reason != "fatal_error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "produced": dict(self.produced),
            "failed": dict(self.failed),
            "undelivered": self.undelivered,
            "total": self.total,
            "delivered": self.delivered,
            "failed_total": self.failed_total,
            "malformed": self.malformed,
            "defects": dict(sorted(self.defects.items())),
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.events_per_s, 1),
            "stop_reason": self.stop_reason,
            "vehicles": self.vehicles,
            "arrived": self.arrived,
            "first_error": self.first_error,
            "ok": self.ok,
        }

    def format(self) -> str:
        lines = [f"{'topic':<16} {'records':>10} {'failed':>8}"]
        for topic in self.produced:
            lines.append(f"{topic:<16} {self.produced[topic]:>10,} {self.failed[topic]:>8,}")
        lines.append(f"{'total':<16} {self.total:>10,} {self.failed_total:>8,}")
        if self.malformed:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.defects.items()))
            lines.append(f"malformed on purpose: {self.malformed:,} ({kinds})")
        lines.append(
            f"{self.total:,} events in {self.elapsed_s:.2f}s = {self.events_per_s:,.0f} events/s; "
            f"stopped: {self.stop_reason}; vehicles arrived {self.arrived}/{self.vehicles}; "
            f"failed deliveries: {self.failed_total:,}"
            + (f" (undelivered at exit: {self.undelivered:,})" if self.undelivered else "")
        )
        if self.first_error:
            lines.append(f"first delivery error: {self.first_error}")
        return "\n".join(lines)


def producer_config(
    settings: Settings, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S, **overrides: Any
) -> dict[str, Any]:
    """The simulator's producer settings on top of the security passthrough of `settings`.

    Usable as is by other code: delivery reports stay on for every message here; only
    `run_simulation` narrows them to failures.
    """
    conf: dict[str, Any] = {
        **settings.kafka_client_config(),
        "client.id": "movesmart-simulator",
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 1,  # see the module docstring: no implicit ack
        "linger.ms": 25,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        "reconnect.backoff.max.ms": 1000,
        "partitioner": "murmur2_random",  # the Java clients' key -> partition mapping
        **client_logging(KAFKA_LOG),
    }
    conf.update(overrides)
    return conf


def run_producer_config(
    settings: Settings, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S, **overrides: Any
) -> dict[str, Any]:
    """Exactly the settings `run_simulation` produces with, without its two callbacks.

    One source for the simulator and for `bench/bench_simulator.py`'s raw produce loop,
    which must send with the very same settings to be a fair yardstick.
    """
    return producer_config(settings, delivery_timeout_s, **{"delivery.report.only.error": True, **overrides})


def check_broker(settings: Settings, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Raise BrokerUnreachable unless a broker answers a metadata request within `timeout_s`."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**settings.kafka_client_config(), **client_logging(KAFKA_LOG)})
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as err:
        detail = err.args[0].str() if err.args else str(err)
        raise BrokerUnreachable(
            f"Kafka broker unreachable at {settings.kafka_bootstrap_servers}: "
            f"no answer within {timeout_s:g}s ({detail})"
        ) from None
    if not md.brokers:
        raise BrokerUnreachable(f"Kafka at {settings.kafka_bootstrap_servers} reports no brokers")


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the five topics if missing (broker default partitions); returns those created.

    A broker that refuses (ACLs, a managed cluster) is not fatal: the topics may exist
    under other rules or be auto-created; produce errors would then say so.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({**settings.kafka_client_config(), **client_logging(KAFKA_LOG)})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in TOPICS if t not in existing]
    if not missing:
        return []
    created = []
    for topic, fut in admin.create_topics([NewTopic(t) for t in missing], request_timeout=timeout_s).items():
        try:
            fut.result(timeout_s)
            created.append(topic)
        except KafkaException as err:
            if err.args and err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                KAFKA_LOG.warning("could not create topic %s: %s", topic, err)
    return created


def run_simulation(
    config: SimConfig,
    settings: Settings,
    *,
    rate: float = 0.0,
    duration_s: float | None = None,
    progress: bool = False,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
    should_stop: Callable[[], bool] | None = None,
    producer_overrides: dict[str, Any] | None = None,
) -> RunSummary:
    """Produce the fleet's records into Kafka and wait until each is acked or failed.

    Stops when every vehicle has arrived, `config.max_events` records were produced,
    `duration_s` (wall clock) has passed, or `should_stop()` turns True. `rate` caps
    events/s (0 = as fast as possible). Raises BrokerUnreachable if no broker answers
    within `connect_timeout_s` at start.
    """
    from confluent_kafka import Producer
    from tqdm import tqdm

    check_broker(settings, connect_timeout_s)
    ensure_topics(settings)

    summary = RunSummary(vehicles=config.vehicles)
    failed = summary.failed
    fatal: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:  # called only for failures
        if err is not None:
            failed[msg.topic()] = failed.get(msg.topic(), 0) + 1
            if summary.first_error is None:
                summary.first_error = f"{msg.topic()}: {err.str()}"

    def on_error(err: Any) -> None:
        if err.fatal():
            fatal.append(err.str())
        KAFKA_LOG.warning("kafka client: %s", err.str())

    conf = run_producer_config(settings, delivery_timeout_s, **(producer_overrides or {}))
    conf["on_delivery"] = on_delivery  # only failures: no Python per acknowledged record
    conf["error_cb"] = on_error
    producer = Producer(conf)
    produce, poll = producer.produce, producer.poll
    produced = summary.produced
    defects = summary.defects
    stop = should_stop or (lambda: False)

    fleet = Fleet(config)
    bar = tqdm(
        total=config.max_events,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=not progress,
        mininterval=0.5,
        smoothing=0.2,
        dynamic_ncols=True,
        desc="simulate",
    )
    started = time.monotonic()
    deadline = started + duration_s if duration_s else math.inf
    pace_start, paced = started, 0  # rate pacing: the n-th record is due at pace_start + n/rate
    stop_reason = None

    def wait_for_room(topic: str, value: bytes, key: bytes) -> bool:
        """The local queue is full (broker slow or down): serve callbacks until it has room."""
        while True:
            poll(0.05)
            if fatal or stop() or time.monotonic() >= deadline:
                return False
            try:
                produce(topic, value, key)
                return True
            except BufferError:
                continue

    for chunk, chunk_defects in fleet.ticks():
        sent = len(chunk)
        if rate:
            for i, (topic, value, key) in enumerate(chunk):
                paced += 1
                now = time.monotonic()
                due = pace_start + paced / rate
                if due - now > 0.002:
                    time.sleep(due - now)
                elif now - due > 1.0:  # after a stall, resume the rate instead of bursting
                    pace_start, paced = now, 0
                if now >= deadline:
                    stop_reason, sent = "duration", i
                    break
                try:
                    produce(topic, value, key)
                except BufferError:
                    if not wait_for_room(topic, value, key):
                        stop_reason = "duration" if time.monotonic() >= deadline else "interrupted"
                        sent = i
                        break
        else:  # as fast as possible: nothing but the produce call per record
            for record in chunk:
                try:
                    produce(*record)
                except BufferError:
                    if not wait_for_room(*record):
                        stop_reason = "duration" if time.monotonic() >= deadline else "interrupted"
                        sent = next(i for i, r in enumerate(chunk) if r is record)  # each tuple is its own
                        break
        # count per tick, not per record: what was handed to the producer, by topic and defect
        for topic, n in Counter(map(itemgetter(0), chunk[:sent] if sent < len(chunk) else chunk)).items():
            produced[topic] += n
        for i, defect in chunk_defects.items():
            if i < sent:
                defects[defect] = defects.get(defect, 0) + 1
        poll(0)
        bar.update(sent)
        if stop_reason:
            break
        if fatal:
            stop_reason = "fatal_error"
            break
        if stop():
            stop_reason = "interrupted"
            break
        if time.monotonic() >= deadline:
            stop_reason = "duration"
            break
    bar.close()
    if stop_reason is None:  # the fleet ran out: everyone arrived, or max_events cut it short
        stop_reason = "max_events" if fleet.truncated or not fleet.all_arrived else "arrived"

    # wait for every record to be acknowledged or failed (message.timeout.ms bounds this)
    remaining = producer.flush(5.0 if fatal else delivery_timeout_s + 10.0)
    summary.undelivered = remaining
    summary.elapsed_s = time.monotonic() - started
    summary.arrived = fleet.arrived
    summary.stop_reason = "fatal_error" if fatal else stop_reason
    if fatal and summary.first_error is None:
        summary.first_error = fatal[0]
    return summary


def produce_events(settings: Settings, events: int, seed: int = 42, **config: Any) -> RunSummary:
    """Convenience for other code and tests: produce `events` records (fewer if all arrive)."""
    return run_simulation(SimConfig(seed=seed, max_events=events, **config), settings)
