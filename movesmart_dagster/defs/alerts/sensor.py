"""The alerting sensor: one alert per state change, to the log and a Slack-compatible webhook.

Why our own sensor: freshness and asset-check alerting is a paid-tier feature of Dagster;
in open source it is a sensor over the instance. Each tick compares the current state with
the state remembered in the cursor and alerts only on a change:
- freshness: an asset's freshness state turns FAIL ("freshness failed") or leaves FAIL
  for PASS/WARN ("freshness recovered") — states written by the freshness daemon;
- asset checks: a check's latest evaluation turns failed, or passes again after failing;
- runs: a run that ended in FAILURE (each run once; runs tagged
  `movesmart/alert_on_failure=false`, like the quality-check job whose failures are the
  checks' own alerts, are skipped).
A steady state sends nothing, so a table that stays stale alerts once, not every tick.
The webhook gets {"text": ..., "blocks": [...]} (Slack incoming-webhook format), URL from
MOVESMART_ALERT_WEBHOOK_URL; without it alerts go to the sensor log only.
"""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from movesmart_dagster.defs.resources import AlertResource

FIRST_TICK_LOOKBACK_S = 3600.0


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
    freshness: dict[str, str] = field(default_factory=dict)  # asset key -> FreshnessState value
    checks: dict[str, str] = field(default_factory=dict)  # check key -> passed | failed
    runs_since: float = 0.0  # run end timestamps before this are already handled
    alerted_runs: list[str] = field(default_factory=list)

    def to_cursor(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "AlertState":
        return cls(**json.loads(cursor)) if cursor else cls(runs_since=time.time() - FIRST_TICK_LOOKBACK_S)


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
        if new == FreshnessState.FAIL.value:
            alerts.append(
                Alert(
                    "freshness_failed",
                    name,
                    f"no new data within its freshness window (was {old or 'unknown'})",
                )
            )
        elif old == FreshnessState.FAIL.value and new in (
            FreshnessState.PASS.value,
            FreshnessState.WARN.value,
        ):
            alerts.append(Alert("freshness_recovered", name, f"fresh again ({new})"))
    return alerts


def check_alerts(
    instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], state: AlertState
) -> list[Alert]:
    alerts = []
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    for key, record in latest.items():
        if record.status == AssetCheckExecutionRecordStatus.PLANNED:
            continue
        name = f"{key.asset_key.to_user_string()}:{key.name}"
        new = "failed" if record.status == AssetCheckExecutionRecordStatus.FAILED else "passed"
        old = state.checks.get(name)
        state.checks[name] = new
        if new == old:
            continue
        description = ""
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None and evaluation.description:
            description = evaluation.description
        if new == "failed":
            alerts.append(Alert("check_failed", name, description or "the check failed"))
        elif old == "failed":
            alerts.append(Alert("check_recovered", name, description or "the check passes again"))
    return alerts


def run_alerts(instance: dg.DagsterInstance, state: AlertState) -> list[Alert]:
    from datetime import UTC, datetime

    alerts = []
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            updated_after=datetime.fromtimestamp(state.runs_since, UTC),
        ),
        limit=50,
    )
    newest = state.runs_since
    for record in records:
        run = record.dagster_run
        newest = max(newest, record.update_timestamp.timestamp())
        if run.run_id in state.alerted_runs or run.tags.get("movesmart/alert_on_failure") == "false":
            continue
        state.alerted_runs = [*state.alerted_runs, run.run_id][-200:]
        alerts.append(Alert("run_failed", f"run {run.run_id[:8]} of {run.job_name}", "ended in FAILURE"))
    state.runs_since = newest
    return alerts


def evaluate(
    instance: dg.DagsterInstance,
    freshness_keys: list[dg.AssetKey],
    check_keys: list[dg.AssetCheckKey],
    state: AlertState,
) -> list[Alert]:
    return [
        *freshness_alerts(instance, freshness_keys, state),
        *check_alerts(instance, check_keys, state),
        *run_alerts(instance, state),
    ]


def build_alert_sensor(freshness_keys: list[dg.AssetKey]) -> dg.SensorDefinition:
    @dg.sensor(
        name="alerts_sensor",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One alert per state change (freshness, asset checks, failed runs) to the log and a webhook.",
    )
    def alerts_sensor(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SensorResult:
        state = AlertState.from_cursor(context.cursor)
        check_keys = sorted(context.repository_def.asset_graph.asset_check_keys, key=str)
        found = evaluate(context.instance, freshness_keys, check_keys, state)
        delivered = 0
        for alert in found:
            context.log.warning(f"ALERT {alert.text}")
            delivered += alerts.send(alert.text, alert.blocks(alerts.dagster_url))
        reason = f"{len(found)} alert(s) sent ({delivered} to the webhook)" if found else "no state change"
        context.log.info(reason)
        return dg.SensorResult(skip_reason=reason, cursor=state.to_cursor())

    return alerts_sensor
