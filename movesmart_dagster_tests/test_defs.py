"""The code location loads, and what it defines matches a committed snapshot.

Why a snapshot: an asset key, a check or a sensor that disappears or is renamed breaks the
UI bookmarks, the alert history and the acceptance contract silently. The snapshot lists
every asset (group, kinds, upstreams, freshness), check (blocking), sensor and schedule
(default status), and job. After an intended change, refresh it with
`MOVESMART_UPDATE_SNAPSHOTS=1 pytest movesmart_dagster_tests/test_defs.py` (it rewrites the file
and fails, so a changed snapshot never passes unseen), review and commit the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from movesmart_dagster.definitions import defs
from movesmart_dagster.defs.checks.checks import day_checks_job
from movesmart_dagster.defs.resources import SparkResource
from movesmart_dagster.schemas import ALL_TABLES, TABLES
from movesmart_dagster.settings import SettingsError

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
            "partitions": str(node.partitions_def) if node.partitions_def else None,
            "freshness": type(policy).__name__ if policy else None,
            "observable": node.is_observable,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
        }
    checks = {}
    for ck in sorted(graph.asset_check_keys, key=str):
        spec = graph.get_check_spec(ck)
        checks[f"{ck.asset_key.to_user_string()}:{ck.name}"] = {
            "blocking": spec.blocking,
            "partitioned": spec.partitions_def is not None,
            "automation": spec.automation_condition.get_label() if spec.automation_condition else None,
        }
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
    committed = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else None
    if os.environ.get("MOVESMART_UPDATE_SNAPSHOTS") == "1" and current != committed:
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.fail(
            f"snapshot rewritten: review `git diff {SNAPSHOT.name}`, then run again without the variable"
        )
    assert current == committed


def test_dg_checks_and_lists_the_code_location(tmp_path):
    """`dg check defs` and `dg list defs` (`[tool.dg]` in pyproject.toml) load the same code
    location as `dagster dev -w workspace.yaml`: every asset, check, job, schedule and sensor."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "MOVESMART_HOME": str(tmp_path / "home"), "VIRTUAL_ENV": str(bin_dir.parent)}
    root = Path(__file__).resolve().parents[1]
    check = subprocess.run(
        [str(bin_dir / "dg"), "check", "defs"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0 and "All definitions loaded successfully" in check.stdout, check.stderr[
        -3000:
    ]
    listed = subprocess.run(
        [str(bin_dir / "dg"), "list", "defs", "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    repo = defs.get_repository_def()
    assert {a["asset_key"] for a in found["assets"]} == {
        k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()
    }
    assert {j["name"] for j in found["jobs"]} == {
        j.name for j in repo.get_all_jobs() if j.name != "__ASSET_JOB"
    }
    assert {s["name"] for s in found["schedules"]} == {s.name for s in repo.schedule_defs}
    assert {s["name"] for s in found["sensors"]} == {s.name for s in repo.sensor_defs}
    assert len(found["asset_checks"]) == len(repo.asset_graph.asset_check_keys)


def test_contract_names():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    for table in ALL_TABLES:
        assert any(k.endswith(table) and k.startswith("smartcity/") for k in keys), table
    assert any("dev_smartcity" in k for k in keys)
    assert "streaming_job" in {j.name for j in repo.get_all_jobs()}


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
            else {"no_null_ids", "no_duplicate_ids", "freshness_check"}
        )
        assert expected <= names, (table, names)
    assert graph.get(dg.AssetKey(["catalog", "dev_smartcity"])).freshness_policy is not None


def test_freshness_window_is_configurable(monkeypatch):
    from movesmart_dagster.defs.streaming.assets import table_specs
    from movesmart_dagster.settings import load_settings

    def windows(env: dict[str, str]) -> dict[str, float]:
        return {
            s.key.path[-1]: s.freshness_policy.fail_window.to_timedelta().total_seconds()
            for s in table_specs(load_settings(env))
            if s.freshness_policy
        }

    frequent = ["vehicle_data", "gps_data", "traffic_data", "weather_data"]
    # emergency_data: 6.9 mean gaps between incident starts (720 s for 5 vehicles at 5 s ticks), whole minutes
    assert windows({"MOVESMART_FRESHNESS_FAIL_MINUTES": "12"}) == {t: 720.0 for t in frequent} | {
        "emergency_data": 83 * 60.0
    }
    assert windows({}) == {t: 300.0 for t in frequent} | {"emergency_data": 83 * 60.0}
    # the setting stays the floor: a longer one applies to emergency_data too
    assert windows({"MOVESMART_FRESHNESS_FAIL_MINUTES": "120"})["emergency_data"] == 7200.0


def test_freshness_windows_fit_the_simulated_streams():
    """Each table's window against what the simulator really sends: over ten default fleets, no
    gap between two records of a table (or at either end of the drive) reaches its window; and
    emergency_data's gaps often exceed the frequent tables' 5 minutes — with that window it
    flapped between failed and recovered."""
    from datetime import datetime

    from movesmart_dagster.defs.streaming.assets import MODEL_FLEET, freshness_window
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.simulator.fleet import SimConfig, iter_records

    settings = load_settings({})
    longest: dict[str, float] = {t: 0.0 for t in TABLES}
    over_five_minutes = gaps = 0
    for seed in range(1, 11):
        fleet = SimConfig(vehicles=MODEL_FLEET.vehicles, tick_seconds=MODEL_FLEET.tick_seconds, seed=seed)
        times: dict[str, list[float]] = {t: [] for t in TABLES}
        start = end = None
        for record in iter_records(fleet):
            at = datetime.fromisoformat(json.loads(record.value)["timestamp"]).timestamp()
            start = at if start is None else start
            end = at
            times[record.topic].append(at)
        for table, stamps in times.items():
            points = [start, *stamps, end]
            table_gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
            longest[table] = max(longest[table], *table_gaps)
            if table == "emergency_data":
                gaps += len(table_gaps)
                over_five_minutes += sum(g > 300 for g in table_gaps)
    for table in TABLES:
        assert longest[table] < freshness_window(settings, table).total_seconds(), (table, longest[table])
    assert longest["vehicle_data"] <= MODEL_FLEET.tick_seconds + 1
    assert over_five_minutes / gaps > 0.25, (over_five_minutes, gaps)


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


def test_spark_resource_is_dagster_pysparks_lazy_resource(monkeypatch, tmp_path):
    """dagster-pyspark's interface: `spark_session` built lazily in the run, from our settings
    (jars, the Iceberg catalog) with `spark_config` on top; the extras also reach the job's child."""
    from dagster_pyspark import LazyPySparkResource

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path))
    spark = SparkResource(spark_config={"spark.sql.shuffle.partitions": "3", "spark.movesmart.probe": "on"})
    assert isinstance(spark, LazyPySparkResource)
    seen: dict[str, str] = {}

    @dg.asset
    def probe(spark: SparkResource) -> None:
        conf = spark.spark_session.conf
        for key in ("spark.sql.shuffle.partitions", "spark.movesmart.probe", "spark.sql.catalog.movesmart"):
            seen[key] = conf.get(key)

    assert dg.materialize([probe], resources={"spark": spark}).success
    assert seen == {
        "spark.sql.shuffle.partitions": "3",
        "spark.movesmart.probe": "on",
        "spark.sql.catalog.movesmart": "org.apache.iceberg.spark.SparkCatalog",
    }
    cmd = spark.streaming_command("1 second")
    assert cmd[-4:] == ["--conf", "spark.sql.shuffle.partitions=3", "--conf", "spark.movesmart.probe=on"]
    from movesmart_dagster.streaming.job import build_parser
    from movesmart_dagster.streaming.options import parse_conf

    args = build_parser().parse_args(cmd[cmd.index("movesmart_dagster.streaming.job") + 1 :])
    assert parse_conf(args.conf) == (("spark.sql.shuffle.partitions", "3"), ("spark.movesmart.probe", "on"))
    with pytest.raises(SettingsError, match="invalid --conf 'nokey'"):
        parse_conf(["nokey"])


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


def test_each_table_check_runs_on_its_own(tmp_path, monkeypatch):
    """The Checks tab's *Execute* runs one check without materializing the table: each check is
    its own unit of execution, and a run of one check evaluates exactly that one."""
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    graph = defs.get_repository_def().asset_graph
    table_checks = sorted(
        (k for k in graph.asset_check_keys if k.asset_key.path[0] == "smartcity"), key=lambda k: str(k)
    )
    assert len(table_checks) == 22  # 16 rules over the record tables, 1 over quarantine, 5 freshness
    for key in table_checks:
        assert graph.get_execution_set_asset_and_check_keys(key) == {key}, key
    one = next(k for k in table_checks if k.name == "speed_in_range" and k.asset_key.path[-1] == "gps_data")
    # what *Execute* launches for a day: the implicit asset job with that check alone
    job = day_checks_job(defs, {one})
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, partition_key="2024-01-01")
        evaluations = result.get_asset_check_evaluations()
        assert [(e.asset_key, e.check_name, e.passed, e.partition) for e in evaluations] == [
            (one.asset_key, one.name, True, "2024-01-01")
        ]
        assert not instance.fetch_materializations(one.asset_key, limit=1).records  # nothing materialized


def test_a_stale_table_fails_its_freshness_check(tmp_path, monkeypatch):
    """The freshness checks use each table's own window: data 10 minutes old is stale for
    gps_data (5 min) and fresh for emergency_data (83 min); 100 minutes old is stale for both.
    A failed check is an ERROR, which is what marks the table's row red in the asset list."""
    import time

    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "home"))
    graph = defs.get_repository_def().asset_graph
    keys = {t: dg.AssetKey(["smartcity", t]) for t in ("gps_data", "emergency_data")}
    checks = [dg.AssetCheckKey(k, "freshness_check") for k in keys.values()]
    assert all(graph.get_execution_set_asset_and_check_keys(c) == {c} for c in checks)
    job = dg.define_asset_job("table_freshness", selection=dg.AssetSelection.checks(*checks))
    resolved = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("table_freshness")

    def results(minutes_ago: float) -> dict[str, tuple[bool, dg.AssetCheckSeverity]]:
        with dg.instance_for_test() as instance:
            for key in keys.values():
                updated = time.time() - minutes_ago * 60
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        key, metadata={"dagster/last_updated_timestamp": dg.MetadataValue.timestamp(updated)}
                    )
                )
            evaluations = resolved.execute_in_process(instance=instance).get_asset_check_evaluations()
        return {e.asset_key.path[-1]: (e.passed, e.severity) for e in evaluations}

    error = dg.AssetCheckSeverity.ERROR
    assert results(1) == {"gps_data": (True, error), "emergency_data": (True, error)}
    assert results(10) == {"gps_data": (False, error), "emergency_data": (True, error)}
    assert results(100) == {"gps_data": (False, error), "emergency_data": (False, error)}


def test_tables_and_analytics_share_one_daily_partitions_definition(monkeypatch):
    """One definition, from MOVESMART_START_DATE, UTC, to the last closed day."""
    from datetime import UTC, datetime

    from movesmart_dagster.definitions import build_defs
    from movesmart_dagster.defs.keys import ANALYTICS_KEYS, TABLE_KEYS

    monkeypatch.setenv("MOVESMART_START_DATE", "2025-02-03")
    graph = build_defs().get_repository_def().asset_graph
    keys = [*TABLE_KEYS.values(), *ANALYTICS_KEYS.values()]
    definitions = {graph.get(k).partitions_def for k in keys}
    assert len(definitions) == 1
    (daily,) = definitions
    assert isinstance(daily, dg.DailyPartitionsDefinition) and daily.timezone == "UTC"
    now = datetime(2025, 2, 5, 13, 0, tzinfo=UTC)
    assert daily.get_partition_keys(current_time=now) == ["2025-02-03", "2025-02-04"]
