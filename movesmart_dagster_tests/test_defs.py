"""The code location loads, and what it defines matches a committed snapshot.

Why a snapshot: an asset key, a check or a sensor that disappears or is renamed breaks the
UI bookmarks, the alert history and the acceptance contract silently. The snapshot lists
every asset (group, kinds, upstreams, freshness), check (blocking), sensor and schedule
(default status), and job. After an intended change, refresh it with
`MOVESMART_UPDATE_SNAPSHOTS=1 pytest movesmart_dagster_tests/test_defs.py` and commit the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from movesmart_dagster.definitions import defs
from movesmart_dagster.schemas import ALL_TABLES

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
REPO = Path(__file__).resolve().parent.parent


def _snapshot() -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        policy = node.freshness_policy
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "upstream": sorted(k.to_user_string() for k in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "freshness": type(policy).__name__ if policy else None,
            "observable": node.is_observable,
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=str):
        spec = graph.get_check_spec(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {"blocking": spec.blocking}
    return {
        "assets": assets,
        "checks": checks,
        "sensors": {
            s.name: {"default_status": s.default_status.value, "job": s.job_name if s.has_jobs else None}
            for s in sorted(repo.sensor_defs, key=lambda s: s.name)
        },
        "schedules": {
            s.name: {"cron": s.cron_schedule, "default_status": s.default_status.value, "job": s.job_name}
            for s in sorted(repo.schedule_defs, key=lambda s: s.name)
        },
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
    }


def test_definitions_match_snapshot():
    current = _snapshot()
    if os.environ.get("MOVESMART_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_contract_names():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    for table in ALL_TABLES:
        assert any(k.endswith(table) and k.startswith("smartcity/") for k in keys), table
    assert any("dev_smartcity" in k for k in keys)
    assert any("stream" in j.name for j in repo.get_all_jobs())
    assert isinstance(defs, dg.Definitions)


def test_every_table_has_freshness_and_quality_checks():
    graph = defs.get_repository_def().asset_graph
    for table in ALL_TABLES:
        key = dg.AssetKey(["smartcity", table])
        # quarantine staying empty is not staleness
        assert (graph.get(key).freshness_policy is None) == (table == "quarantine")
        names = {ck.name for ck in graph.asset_check_keys if ck.asset_key == key}
        expected = (
            {"quarantine_share_below_threshold"}
            if table == "quarantine"
            else {"no_null_ids", "no_duplicate_ids"}
        )
        assert expected <= names, (table, names)
    assert graph.get(dg.AssetKey(["catalog", "dev_smartcity"])).freshness_policy is not None


def test_freshness_window_is_configurable(monkeypatch):
    from movesmart_dagster.defs.streaming.assets import table_specs
    from movesmart_dagster.settings import load_settings

    specs = table_specs(load_settings({"MOVESMART_FRESHNESS_FAIL_MINUTES": "12"}))
    windows = [
        s.freshness_policy.fail_window.to_timedelta().total_seconds() for s in specs if s.freshness_policy
    ]
    assert windows == [720.0] * 5
    default = table_specs(load_settings({}))
    assert [
        s.freshness_policy.fail_window.to_timedelta().total_seconds() for s in default if s.freshness_policy
    ] == [300.0] * 5


def test_dagster_definitions_validate(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "MOVESMART_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr


def test_spark_resource_builds_the_launch_commands(monkeypatch, tmp_path):
    from movesmart_dagster.defs.resources import SparkResource

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path))
    spark = SparkResource(spark_master="local[2]", s3_endpoint="http://127.0.0.1:9999")
    cmd = spark.streaming_command("5 seconds", max_offsets_per_trigger=1000)
    assert cmd[1:] == ["-u", "-m", "movesmart_dagster.streaming.job", "--trigger-interval", "5 seconds"] + [
        "--max-offsets-per-trigger",
        "1000",
    ]
    assert "--available-now" in spark.streaming_command("5 seconds", available_now=True)
    submit = spark.spark_submit_command("movesmart_dagster/streaming/job.py", ["--available-now"])
    assert Path(submit[0]).name == "spark-submit" and Path(submit[0]).exists()
    assert submit[submit.index("--master") + 1] == "local[2]"
    assert all(j.endswith(".jar") for j in submit[submit.index("--jars") + 1].split(","))
    assert "spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:9999" in submit
    assert submit[-2:] == ["movesmart_dagster/streaming/job.py", "--available-now"]
    assert spark.child_env()["MOVESMART_SPARK_MASTER"] == "local[2]"


def test_resources_take_values_through_envvar(monkeypatch):
    from movesmart_dagster.defs.resources import build_resources

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-in-code")
    monkeypatch.delenv("MOVESMART_SPARK_MASTER", raising=False)
    kafka = build_resources()["kafka"]
    # the field holds the EnvVar, not the value: nothing secret is baked into the definitions
    assert kafka.kafka_bootstrap_servers == dg.EnvVar("KAFKA_BOOTSTRAP_SERVERS")
    assert kafka.kafka_sasl_password == dg.EnvVar("KAFKA_SASL_PASSWORD")
    assert build_resources()["spark"].spark_master is None  # unset: the settings default applies
