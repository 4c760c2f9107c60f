"""The consumer-lag check of each Kafka topic, fed by the lag the supervisor already measures.

Why on the topics and fed by the supervisor: an operator looks for "is the stream keeping up?"
on the topic, and the supervisor computes each topic's lag every tick anyway (end offsets minus
the offsets of the job's committed batches). It keeps a short history of those figures in its
cursor and reports the check's verdict (`kafka/<topic>:consumer_lag`) when it changes, or every
REPORT_EVERY_S while it holds — not every tick, so the event log stays small:

- passed: the lag is at most MOVESMART_LAG_WARN_RECORDS, or has been above it for less than
  WARN_AFTER_S (a burst the job is working through);
- WARN: above it for WARN_AFTER_S or longer;
- ERROR: above it for WARN_AFTER_S or longer and still growing (higher now than when it first
  crossed the limit): the job is falling behind.
The alert sensor alerts on the failure and the recovery, as for every other check. *Execute* on
the check judges the lag of that moment alone (no history: warn above the limit).
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from movesmart_dagster.defs.keys import TOPIC_KEYS
from movesmart_dagster.defs.resources import KafkaResource, SparkResource
from movesmart_dagster.defs.streaming.progress_state import ProgressState

CHECK_NAME = "consumer_lag"
WARN_AFTER_S = 180.0  # "a few minutes" above the limit before it warns
REPORT_EVERY_S = 600.0  # a verdict that holds is reported again this often


@dataclass(frozen=True)
class LagVerdict:
    topic: str
    lag: int
    status: str  # passed | warn | error
    above_since: float | None
    lag_when_crossed: int | None
    limit: int

    def evaluation(self, now: float) -> dg.AssetCheckEvaluation:
        above = f", above {self.limit:,} for {now - self.above_since:.0f}s" if self.above_since else ""
        trend = (
            f" (was {self.lag_when_crossed:,} when it crossed the limit)"
            if self.lag_when_crossed is not None
            else ""
        )
        return dg.AssetCheckEvaluation(
            asset_key=TOPIC_KEYS[self.topic],
            check_name=CHECK_NAME,
            passed=self.status == "passed",
            severity=dg.AssetCheckSeverity.ERROR if self.status == "error" else dg.AssetCheckSeverity.WARN,
            description=f"lag {self.lag:,} records{above}{trend}",
            metadata={"lag": self.lag, "limit": self.limit, "status": self.status},
        )


def judge(
    topic: str, lag: int, now: float, limit: int, memory: dict[str, Any]
) -> tuple[LagVerdict, dict[str, Any]]:
    """The verdict for one topic's lag now, and the topic's memory for the next tick
    (`{"above_since", "lag_when_crossed"}` while above the limit)."""
    if lag <= limit:
        return LagVerdict(topic, lag, "passed", None, None, limit), {}
    since = memory.get("above_since", now)
    crossed = int(memory.get("lag_when_crossed", lag))
    status = "passed"
    if now - since >= WARN_AFTER_S:
        status = "error" if lag > crossed else "warn"
    verdict = LagVerdict(topic, lag, status, since, crossed, limit)
    return verdict, {"above_since": since, "lag_when_crossed": crossed}


def lag_evaluations(
    lags: dict[str, int], now: float, limit: int, state: dict[str, Any]
) -> list[dg.AssetCheckEvaluation]:
    """Judges every topic's lag; returns the evaluations to report now, updating `state`
    (`{"memory": {topic: ...}, "reported": {topic: [status, at]}}`, kept in the supervisor's cursor)."""
    memory = state.setdefault("memory", {})
    reported = state.setdefault("reported", {})
    out = []
    for topic in TOPIC_KEYS:
        verdict, memory[topic] = judge(topic, int(lags.get(topic, 0)), now, limit, memory.get(topic, {}))
        last = reported.get(topic)
        if last is None or last[0] != verdict.status or now - last[1] >= REPORT_EVERY_S:
            reported[topic] = [verdict.status, now]
            out.append(verdict.evaluation(now))
    return out


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=key,
            description="The streaming job's lag behind the topic: warns after MOVESMART_LAG_WARN_RECORDS "
            "for a few minutes, fails while it keeps growing (reported by the supervisor).",
        )
        for key in TOPIC_KEYS.values()
    ],
    name="kafka_consumer_lag",
    can_subset=True,
)
def kafka_consumer_lag(context: dg.AssetCheckExecutionContext, kafka: KafkaResource, spark: SparkResource):
    """Run by hand: the lag of this moment (no history), warning above the limit."""
    settings = spark.settings()
    committed = ProgressState.load(settings.progress_log).committed_offsets()
    lags = kafka.consumer_lag(committed, list(TOPIC_KEYS))
    selected = {k.asset_key for k in context.selected_asset_check_keys}
    for topic, key in TOPIC_KEYS.items():
        if key not in selected:
            continue
        lag = int(lags.get(topic, 0))
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK_NAME,
            passed=lag <= settings.lag_warn_records,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"lag {lag:,} records now (limit {settings.lag_warn_records:,})",
            metadata={"lag": lag, "limit": settings.lag_warn_records},
        )
