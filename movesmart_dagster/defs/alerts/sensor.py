"""The alerting sensor: one alert per state change, to the log and a Slack-compatible webhook.

Why our own sensor: freshness and asset-check alerting is a paid-tier feature of Dagster;
in open source it is a sensor over the instance. Each tick compares the current state with
the state remembered in the cursor and alerts only on a change:
- freshness: an asset's freshness state turns FAIL ("freshness failed") or leaves FAIL
  for PASS/WARN ("freshness recovered") — states written by the freshness daemon;
- asset checks: a check's latest evaluation turns failed, or passes again after failing — per
  day for the tables' per-day checks, whose alerts name the day (`...:no_null_ids[2024-01-01]`) (not
  the tables' freshness checks: they mirror the freshness policies above) —
  except a partition freshness check (the daily analytics) whose expected partition has no
  source data at all: a day nobody sent records for is not late, it is empty (on a fresh
  install every analytics check fails so, for a day before the platform existed). Once the
  source table gets rows for that day, the same failure alerts;
- runs: Dagster's own `run_failure_sensor` (`run_failure_alerts`), one alert per run that
  ended in FAILURE (runs tagged `movesmart/alert_on_failure=false`, like the quality-check
  job whose failures are the checks' own alerts, are skipped).
A steady state sends nothing, so a table that stays stale alerts once, not every tick.
The webhook gets {"text": ..., "blocks": [...]} (Slack incoming-webhook format), URL from
MOVESMART_ALERT_WEBHOOK_URL; without it alerts go to the sensor log only.
"""

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from movesmart_dagster.defs.keys import TABLE_KEYS
from movesmart_dagster.defs.resources import AlertResource, WarehouseResource

# the states as the instance's records spell them (the enums are not in Dagster's public API)
FRESHNESS_FAIL, FRESHNESS_PASS, FRESHNESS_WARN = "FAIL", "PASS", "WARN"
CHECK_PLANNED, CHECK_FAILED = "PLANNED", "FAILED"
NO_ALERT_TAG = "movesmart/alert_on_failure"  # "false": the run's failure is alerted otherwise
NO_SOURCE_DATA = "no_source_data"  # a check state: failed, but for a partition nothing was sent for
# what `build_time_partition_freshness_checks` writes on every evaluation, and how it names the
# partition it expected (only in the description; its metadata has the deadline, not the key)
FRESHNESS_PARAMS_METADATA_KEY = "dagster/freshness_params"
FRESHNESS_CHECK_NAME = "freshness_check"  # the name Dagster's freshness check factories give
_EXPECTED_PARTITION = re.compile(r"expect(?:ed)? partition (\S+) to have arrived")

# (asset key, partition key) -> does any source table of the asset hold data for that partition?
SourceDataProbe = Callable[[dg.AssetKey, str], bool]


def expected_partition(evaluation: Any) -> str | None:
    """The partition a failed partition freshness check expected; None for any other check."""
    if evaluation is None or FRESHNESS_PARAMS_METADATA_KEY not in (evaluation.metadata or {}):
        return None
    match = _EXPECTED_PARTITION.search(evaluation.description or "")
    return match.group(1) if match else None


def warehouse_probe(asset_graph: Any, warehouse: WarehouseResource) -> SourceDataProbe:
    """Source data = an `event_date=<partition>` folder with files in a table the asset reads."""
    table_of = {key: table for table, key in TABLE_KEYS.items()}
    listed: dict[str, set[str]] = {}  # one listing per table per tick

    def has_source_data(asset_key: dg.AssetKey, partition: str) -> bool:
        tables = [table_of[k] for k in asset_graph.get(asset_key).parent_keys if k in table_of]
        if not tables:
            return True  # not computed from a table: no way to tell, so it alerts
        for table in tables:
            if table not in listed:
                listed[table] = set(warehouse.list_partitions(table))
        return any(partition in listed[t] for t in tables)

    return has_source_data


@dataclass
class Alert:
    kind: str  # freshness_failed | freshness_recovered | check_failed | check_recovered | run_failed
    subject: str
    detail: str

    @property
    def text(self) -> str:
        icon = {"freshness_recovered": ":white_check_mark:", "check_recovered": ":white_check_mark:"}.get(
            self.kind, ":rotating_light:"
        )
        return f"{icon} Move Smart {self.kind.replace('_', ' ')}: {self.subject} — {self.detail}"

    def blocks(self, dagster_url: str) -> list[dict[str, Any]]:
        return [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"Move Smart: {self.kind.replace('_', ' ')}"},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{self.subject}*\n{self.detail}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{dagster_url}|Open Dagster>"}]},
        ]


@dataclass
class AlertState:
    freshness: dict[str, str] = field(default_factory=dict)  # asset key -> freshness state
    checks: dict[str, str] = field(default_factory=dict)  # check key -> passed | failed

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "AlertState":
        if not cursor:
            return cls()
        saved = json.loads(cursor)  # a cursor of an older version may hold fields since dropped
        return cls(**{k: v for k, v in saved.items() if k in cls.__dataclass_fields__})


def freshness_alerts(instance: dg.DagsterInstance, keys: list[dg.AssetKey], state: AlertState) -> list[Alert]:
    alerts = []
    records = instance.get_freshness_state_records(keys)
    for key, record in records.items():
        name = key.to_user_string()
        new = record.freshness_state.value
        old = state.freshness.get(name)
        state.freshness[name] = new
        if new == old:
            continue
        if new == FRESHNESS_FAIL:
            alerts.append(
                Alert(
                    "freshness_failed",
                    name,
                    f"no new data within its freshness window (was {old or 'unknown'})",
                )
            )
        elif old == FRESHNESS_FAIL and new in (FRESHNESS_PASS, FRESHNESS_WARN):
            alerts.append(Alert("freshness_recovered", name, f"fresh again ({new})"))
    return alerts


def check_alerts(
    instance: dg.DagsterInstance,
    check_keys: list[dg.AssetCheckKey],
    state: AlertState,
    has_source_data: SourceDataProbe | None = None,
) -> list[Alert]:
    alerts = []
    wanted = set(check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    for key, record in latest.items():
        # the storage matches asset keys and check names separately: it can answer unasked pairs
        if key not in wanted or record.status.value == CHECK_PLANNED:
            continue
        evaluation = record.event.asset_check_evaluation if record.event else None
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        if evaluation is not None and evaluation.partition:
            name += f"[{evaluation.partition}]"  # a per-day check: each day has its own state
        new = "failed" if record.status.value == CHECK_FAILED else "passed"
        if new == "failed" and has_source_data is not None:
            partition = expected_partition(evaluation)
            if partition is not None and not has_source_data(key.asset_key, partition):
                new = NO_SOURCE_DATA  # nothing to compute that day: not late, and no alert
        old = state.checks.get(name)
        state.checks[name] = new
        if new in (old, NO_SOURCE_DATA):
            continue
        description = ""
        if evaluation is not None and evaluation.description:
            description = evaluation.description
        if new == "failed":
            alerts.append(Alert("check_failed", name, description or "the check failed"))
        elif old == "failed":
            alerts.append(Alert("check_recovered", name, description or "the check passes again"))
    return alerts


def evaluate(
    instance: dg.DagsterInstance,
    freshness_keys: list[dg.AssetKey],
    check_keys: list[dg.AssetCheckKey],
    state: AlertState,
    has_source_data: SourceDataProbe | None = None,
) -> list[Alert]:
    return [
        *freshness_alerts(instance, freshness_keys, state),
        *check_alerts(instance, check_keys, state, has_source_data),
    ]


def build_alert_sensor(freshness_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One alert per state change (freshness, asset checks) to the log and a webhook.",
    )
    def alerts_sensor(
        context: dg.SensorEvaluationContext, alerts: AlertResource, warehouse: WarehouseResource
    ) -> dg.SensorResult:
        state = AlertState.from_cursor(context.cursor)
        graph = context.repository_def.asset_graph
        # a table's freshness check mirrors its freshness policy, which alerts already: not twice
        check_keys = sorted(
            (
                k
                for k in graph.asset_check_keys
                if not (k.name == FRESHNESS_CHECK_NAME and k.asset_key in freshness_keys)
            ),
            key=str,
        )
        found = evaluate(
            context.instance, freshness_keys, check_keys, state, warehouse_probe(graph, warehouse)
        )
        delivered = 0
        for alert in found:
            context.log.warning(f"ALERT {alert.text}")
            delivered += alerts.send(alert.text, alert.blocks(alerts.dagster_url))
        reason = f"{len(found)} alert(s) sent ({delivered} to the webhook)" if found else "no state change"
        # "no state change" every tick stays out of the terminal (DEBUG: still in the tick's log)
        (context.log.info if found else context.log.debug)(reason)
        return dg.SensorResult(skip_reason=reason, cursor=state.to_cursor())

    return alerts_sensor


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per failed run to the log and a webhook (not the quality-check runs).",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
    run = context.dagster_run
    if run.tags.get(NO_ALERT_TAG) == "false":
        return
    alert = Alert("run_failed", f"run {run.run_id[:8]} of {run.job_name}", "ended in FAILURE")
    context.log.warning(f"ALERT {alert.text}")
    alerts.send(alert.text, alert.blocks(alerts.dagster_url))
