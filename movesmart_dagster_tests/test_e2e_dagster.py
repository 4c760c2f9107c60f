"""End to end through `dagster dev`: webserver + daemon, a broker, the simulator and real Spark.

One `dagster dev` (free port, DAGSTER_HOME in tmp) serves every test of this module, in order:
1. the supervisor sensor (on by default) launches the streaming run by itself, and all five
   tables get materializations with the per-batch metadata — checked over GraphQL;
2. headless Chromium (Debian's, driven by Playwright) opens the asset graph, finds the
   tables and `dev_smartcity`, and saves a screenshot (in the test's tmp folder;
   `MOVESMART_REFRESH_DOCS=1` also writes docs/dagster-asset-graph.png, on purpose);
3. a table's Checks tab, in the same browser: its *Execute* button is enabled for one check,
   runs that check alone (no materialization), and the tab then shows the latest result;
4. with the supervisor stopped, terminating the run over GraphQL (what the UI's Terminate
   button sends) cancels it and leaves no Spark JVM behind;
5. an asset backfill of the daily analytics over two days, launched as the UI launches it,
   is run by the daemon as one run and materializes both partitions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from movesmart_dagster.dev import ensure_instance_yaml
from movesmart_dagster.schemas import TABLES
from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port, stop_group, wait_for_port
from movesmart_dagster.tables import connect
from movesmart_dagster_tests.conftest import stack_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCS_SCREENSHOT = REPO / "docs" / "dagster-asset-graph.png"
SENT = 3000  # records the fixture's simulator sends (--max-events)


@dataclass
class DagsterDev:
    url: str
    env: dict[str, str]
    home: Path
    log: Path

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.loads(resp.read())
        assert "errors" not in out, out
        return out["data"]

    def runs(self, job: str = "streaming_job") -> list[dict]:
        data = self.graphql(
            """query($job: String!) { runsOrError(filter: {pipelineName: $job}) {
                 ... on Runs { results { runId status tags { key value } } } } }""",
            {"job": job},
        )
        return data["runsOrError"]["results"]

    def materializations(self, path: list[str], limit: int = 5) -> list[dict]:
        data = self.graphql(
            """query($key: AssetKeyInput!, $limit: Int!) { assetOrError(assetKey: $key) {
                 ... on Asset { assetMaterializations(limit: $limit) { runId timestamp partition
                   metadataEntries { label ... on IntMetadataEntry { intValue }
                                     ... on FloatMetadataEntry { floatValue }
                                     ... on JsonMetadataEntry { jsonString } } } } } }""",
            {"key": {"path": path}, "limit": limit},
        )
        asset = data["assetOrError"]
        return asset.get("assetMaterializations", []) if asset else []


def wait_for(predicate, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def jvms_of(home: Path) -> list[int]:
    """Java processes started with this MOVESMART_HOME, the broker excepted."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_java = "java" in cmdline.split(" ", 1)[0] and "kafka.Kafka" not in cmdline
        if is_java and f"MOVESMART_HOME={home}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    home = tmp_path_factory.mktemp("e2e-home")
    port = free_port()
    env = {
        **os.environ,
        **stack_env(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "MOVESMART_SUPERVISOR_INTERVAL_SECONDS": "5",
        "MOVESMART_STREAM_TRIGGER_INTERVAL": "5 seconds",
        # a day's first rows go at once, later ones at most every 5 s (60 s by default)
        "MOVESMART_MATERIALIZATION_INTERVAL_SECONDS": "5",
        "MOVESMART_SPARK_MASTER": "local[2]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "1g",
    }
    (home / "dagster").mkdir(parents=True)
    ensure_instance_yaml(home / "dagster")  # the instance `make dev` runs: its pools, its retention
    broker = KafkaBroker(load_settings(env), heap="512m")
    broker.up()
    log = home / "dagster-dev.log"
    procs: list[subprocess.Popen] = []
    try:
        # data first, fast: seed 7 makes emergencies early, so all five topics get records
        sim = subprocess.run(
            [str(BIN / "movesmart"), "simulate", "--vehicles", "5", "--seed", "7", "--max-events", str(SENT)]
            + ["--bad-ratio", "0.01"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sim.returncode == 0, sim.stderr[-2000:]
        with open(log, "ab") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    # SIGINT stops dagster dev even if this pytest was started with SIGINT ignored
                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                )
            )
        assert wait_for_port(port, 180, alive=lambda: procs[0].poll() is None), log.read_text()[-3000:]
        dev = DagsterDev(f"http://127.0.0.1:{port}", env, home, log)
        wait_for(lambda: _location_loaded(dev), 180, "the code location to load")
        yield dev
    finally:
        for proc in procs:
            stop_group(proc, signal.SIGINT, 120)
        broker.down()
        leftovers = jvms_of(home)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not leftovers, f"JVMs left after dagster dev stopped: {leftovers}"


def _location_loaded(dev: DagsterDev) -> bool:
    try:
        data = dev.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename } } } } }"
        )
    except OSError:
        return False
    entries = data["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(
        e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


def _reported_rows(dev: DagsterDev) -> int:
    """Rows of every table and quarantine as their newest materialization per day reports them."""
    total = 0
    for table in (*TABLES, "quarantine"):
        newest: dict[str, dict] = {}
        for mat in dev.materializations(["smartcity", table], 100):  # newest first
            newest.setdefault(mat["partition"], mat)
        total += sum(
            next(e["intValue"] for e in m["metadataEntries"] if e["label"] == "total_rows")
            for m in newest.values()
        )
    return total


@pytest.fixture(scope="module")
def streaming_run(dagster_dev: DagsterDev) -> dict:
    """The run the supervisor launched by itself, once every record sent is reported: each
    test that needs the stream's data asks for this (none relies on another test's effects)."""
    started = time.monotonic()
    run = wait_for(
        lambda: next((r for r in dagster_dev.runs() if r["status"] == "STARTED"), None),
        240,
        "the supervisor to launch a streaming run",
    )

    def all_tables() -> dict[str, list[dict]] | None:
        latest = {t: dagster_dev.materializations(["smartcity", t], 1) for t in (*TABLES, "quarantine")}
        return latest if all(latest.values()) else None

    first = wait_for(all_tables, 300, "materializations of the five tables and quarantine", interval=3)
    print(f"first materializations of all tables {time.monotonic() - started:.0f}s after dagster dev was up")
    wait_for(
        lambda: _reported_rows(dagster_dev) == SENT, 300, f"all {SENT} records to be reported", interval=3
    )
    return {"run": run, "first": first}


def test_supervisor_launches_streaming_and_tables_materialize(dagster_dev: DagsterDev, streaming_run: dict):
    run = streaming_run["run"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["movesmart/launched_by"] == "streaming_supervisor"
    assert "dagster/sensor_name" in tags and tags["dagster/sensor_name"] == "streaming_supervisor"
    for table, mats in streaming_run["first"].items():
        assert mats[0]["runId"] == run["runId"], table
        meta = {e["label"]: e for e in mats[0]["metadataEntries"]}
        for label in (
            "rows_added",
            "total_rows",
            "dagster/row_count",
            "offsets",
            "watermark",
            "last_batch_id",
        ):
            assert label in meta, (table, sorted(meta))
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", mats[0]["partition"]), mats[0]["partition"]  # a day
        assert meta["rows_added"]["intValue"] > 0
        assert meta["total_rows"]["intValue"] >= meta["rows_added"]["intValue"]
        assert json.loads(meta["offsets"]["jsonString"]), table
    # every record the simulator sent is in a table or in quarantine, exactly once, as reported
    assert _reported_rows(dagster_dev) == SENT
    con = connect(load_settings(dagster_dev.env))  # what `movesmart query` reads
    try:
        counts = [con.execute(f"select count(*) from {t}").fetchone()[0] for t in (*TABLES, "quarantine")]
    finally:
        con.close()
    assert sum(counts) == SENT, counts


def _runs_of_sensor(dev: DagsterDev, sensor: str) -> list[dict]:
    data = dev.graphql(
        """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}, limit: 200) { ... on Runs {
             results { runId status tags { key value } assetSelection { path } assetCheckSelection { name } } } } }""",
        {"tags": [{"key": "dagster/sensor_name", "value": sensor}]},
    )
    runs = data["runsOrError"]["results"]
    for run in runs:
        run["partition"] = next((t["value"] for t in run["tags"] if t["key"] == "dagster/partition"), None)
    return runs


def _analytics_rows(dev: DagsterDev, name: str, day: str) -> list[int]:
    """`dagster/row_count` of each materialization of the analytics day, oldest first."""
    data = dev.graphql(
        """query($key: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $key) { ... on Asset {
             assetMaterializations(partitions: $p) { timestamp metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }""",
        {"key": {"path": ["analytics", name]}, "p": [day]},
    )
    mats = sorted(data["assetOrError"]["assetMaterializations"], key=lambda m: float(m["timestamp"]))
    return [
        next(e["intValue"] for e in m["metadataEntries"] if e["label"] == "dagster/row_count") for m in mats
    ]


def test_a_past_day_is_computed_by_itself_and_recomputed_after_late_records(
    dagster_dev: DagsterDev, streaming_run: dict
):
    """Issue 13 items 4 and 7: a simulated past day (as `make dev` seeds one) is checked and its
    analytics computed with no click; late records for it make the automation check it again
    and recompute it, with the new counts; nothing else is computed."""
    from datetime import UTC, datetime, timedelta

    from movesmart_dagster.dev import seed_past_day

    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()  # closed whatever the hour
    # 400 records of 5 vehicles every 30 s from 06:00: weather readings in hour 06 only
    assert seed_past_day(dagster_dev.env, day, seed=3, events=400, start="06:00") == 0
    started = time.monotonic()
    assert wait_for(
        lambda: _analytics_rows(dagster_dev, "weather_summary", day) or None, 600, f"{day}'s analytics"
    ) == [1]
    print(f"past day computed by the automation {time.monotonic() - started:.0f}s after it was sent")
    # late records: the same day's evening (hour 18): one more hourly row
    assert seed_past_day(dagster_dev.env, day, seed=4, events=200, start="18:00") == 0
    rows = wait_for(
        lambda: (r := _analytics_rows(dagster_dev, "weather_summary", day))[-1] == 2 and r,
        600,
        f"{day}'s analytics to be recomputed after late records",
    )
    assert rows[0] == 1 and rows[-1] == 2, rows
    finished = ("SUCCESS", "FAILURE", "CANCELED")
    runs = wait_for(
        lambda: (
            (r := _runs_of_sensor(dagster_dev, "day_partitions_automation"))
            and all(x["status"] in finished for x in r)
            and r
        ),
        300,
        "the automation's runs to finish",
    )
    analytics = [r for r in runs if r["assetSelection"]]
    # only that day was computed, and only on a change of its source days (no duplicate runs)
    assert {r["partition"] for r in analytics} == {day}, analytics
    changes = len(
        [m for m in dagster_dev.materializations(["smartcity", "weather_data"], 200) if m["partition"] == day]
    )
    assert 2 <= len(analytics) <= changes, (len(analytics), changes)
    assert all(r["status"] == "SUCCESS" for r in analytics), analytics
    # the other runs it launched are per-day checks of days that received rows
    for run in runs:
        if not run["assetSelection"]:
            assert run["assetCheckSelection"] and run["partition"] is not None, run


def test_the_automation_history_is_purged_past_its_retention(dagster_dev: DagsterDev, streaming_run: dict):
    """Issue 15: Dagster keeps the evaluations of a code-server automation sensor forever (~0.5 MB
    a tick while the stream runs); `automation_history_retention` deletes those older than
    MOVESMART_AUTOMATION_HISTORY and leaves the younger ones."""
    from datetime import UTC, datetime

    import dagster as dg

    from movesmart_dagster.defs.automation_history import automation_history_sensor
    from movesmart_dagster.defs.keys import ANALYTICS_KEYS

    key = ANALYTICS_KEYS["weather_summary"]
    with dg.DagsterInstance.from_config(dagster_dev.env["DAGSTER_HOME"]) as instance:
        storage = instance.schedule_storage
        assert storage is not None

        def stored() -> list:
            return list(storage.get_auto_materialize_asset_evaluations(key, limit=100_000))

        before = wait_for(lambda: stored() or None, 300, "the automation's stored evaluations")
        # the default history (6 hours) holds everything this module's instance evaluated
        sensor = automation_history_sensor(load_settings({}))
        skip = sensor(dg.build_sensor_context(instance=instance))
        assert "deleted" in skip.skip_message, skip
        kept = {r.evaluation_id for r in stored()}
        assert {r.evaluation_id for r in before} <= kept, "a purge deleted evaluations younger than 6 hours"
        # a history of 0: everything stored before now goes; the sensor may add newer ones meanwhile
        cutoff = datetime.now(UTC)
        zero = automation_history_sensor(load_settings({"MOVESMART_AUTOMATION_HISTORY": "PT0S"}))
        zero(dg.build_sensor_context(instance=instance))
        left = stored()
        # (the storage keeps whole seconds)
        assert all(r.timestamp >= int(cutoff.timestamp()) for r in left), [
            (r.evaluation_id, r.timestamp) for r in left
        ]
        assert not {r.evaluation_id for r in before} & {r.evaluation_id for r in left}


def test_two_maintenance_runs_at_once_run_one_after_the_other(dagster_dev: DagsterDev, streaming_run: dict):
    """Issue 15's soak: the hourly open-day compaction started beside one started by hand, and the
    later commit failed (`Missing required files to delete`: the other had rewritten the same day's
    files). The maintenance assets share a pool of one: the second run waits in the queue."""
    from urllib.parse import urlparse

    import dagster as dg
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=urlparse(dagster_dev.url).port, timeout=60)

    def submit() -> str:
        return client.submit_job_execution(
            "open_day_compaction_job", repository_location_name="movesmart", repository_name="__repository__"
        )

    run_ids = [submit(), submit()]
    with dg.DagsterInstance.from_config(dagster_dev.env["DAGSTER_HOME"]) as instance:

        def finished() -> list | None:
            records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
            return records if len(records) == 2 and all(r.dagster_run.is_finished for r in records) else None

        records = sorted(
            wait_for(finished, 600, "both compaction runs to finish", interval=3), key=lambda r: r.start_time
        )
    assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2, records
    first, second = records
    assert second.start_time >= first.end_time, (first.start_time, first.end_time, second.start_time)


def test_ui_asset_graph_in_headless_chromium(dagster_dev: DagsterDev, streaming_run: dict, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    screenshot = tmp_path / "dagster-asset-graph.png"
    with sync_playwright() as pw:
        browser = _launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # dev_smartcity's lineage, all the way up: topics -> tables -> glue_tables -> dev_smartcity
            page.goto(
                f"{dagster_dev.url}/assets/catalog/dev_smartcity?view=lineage&lineageScope=upstream&lineageDepth=4",
                wait_until="networkidle",
                timeout=120_000,
            )
            skip = page.get_by_role("button", name="Skip")  # the first-visit newsletter dialog
            if skip.count():
                skip.first.click()
            for name in ("vehicle_data", "emergency_data", "quarantine", "glue_tables", "dev_smartcity"):
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # let the layout settle before the picture
            page.screenshot(path=str(screenshot))
            content = page.content()
        finally:
            browser.close()
    for name in (*TABLES, "quarantine", "dev_smartcity", "glue_tables"):
        assert name in content, name
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("MOVESMART_REFRESH_DOCS") == "1":  # refreshing the README's picture is a choice
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


def _launch_chromium(pw):
    return pw.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def _table_checks(dagster_dev: DagsterDev, table: str) -> dict[str, dict]:
    data = dagster_dev.graphql(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
             assetChecksOrError { ... on AssetChecks { checks { name canExecuteIndividually
               executionForLatestMaterialization { runId status timestamp } } } } } } }""",
        {"key": {"path": ["smartcity", table]}},
    )
    return {c["name"]: c for c in data["assetNodeOrError"]["assetChecksOrError"]["checks"]}


def test_ui_checks_tab_shows_per_day_results(dagster_dev: DagsterDev, streaming_run: dict, tmp_path: Path):
    """The Checks tab of a table: the per-day checks ran by themselves (the automation sensor, no
    click) for the day the stream wrote, and the tab shows that day's result (screenshots go to the
    test's tmp folder, and to docs/ with MOVESMART_REFRESH_DOCS=1)."""
    from playwright.sync_api import sync_playwright

    table, check = "gps_data", "no_duplicate_ids"
    written = {m["partition"] for m in dagster_dev.materializations(["smartcity", table], 200)}

    def evaluated() -> dict | None:
        latest = _table_checks(dagster_dev, table)[check]["executionForLatestMaterialization"]
        return latest if latest and latest["status"] == "SUCCEEDED" else None

    latest = wait_for(evaluated, 300, f"{check} to run by itself", interval=3)
    run = dagster_dev.graphql(
        """query($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value }
             assetCheckSelection { name } assetSelection { path } } } }""",
        {"id": latest["runId"]},
    )["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/sensor_name") == "day_partitions_automation", tags
    day = tags.get("dagster/partition")
    assert day in written, (day, written)  # a day the stream wrote
    assert check in {c["name"] for c in run["assetCheckSelection"]}
    # no table is materialized for it (the day's analytics may share the run, after the checks)
    assert all(a["path"][0] == "analytics" for a in run["assetSelection"]), run["assetSelection"]
    with sync_playwright() as pw:
        browser = _launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # the first-visit newsletter dialog may open at any moment: dismiss it whenever it does
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())
            page.goto(
                f"{dagster_dev.url}/assets/smartcity/{table}?view=checks&checkDetail={check}",
                wait_until="networkidle",
                timeout=120_000,
            )
            page.get_by_text("Latest execution", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text("Passed", exact=True).first.wait_for(timeout=60_000)
            page.get_by_text(f"(event_date={day})").first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)  # let the plots settle before the picture
            page.screenshot(path=str(tmp_path / "checks-tab.png"))
            if os.environ.get("MOVESMART_REFRESH_DOCS") == "1":
                shutil.copy(tmp_path / "checks-tab.png", REPO / "docs" / "dagster-checks-per-day.png")
        finally:
            browser.close()


def _sensor_daemon_heartbeat(dev: DagsterDev) -> float:
    data = dev.graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType lastHeartbeatTime } } } }")
    statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
    return next(d["lastHeartbeatTime"] or 0.0 for d in statuses if d["daemonType"] == "SENSOR")


def test_terminating_the_run_stops_spark(dagster_dev: DagsterDev, streaming_run: dict):
    sensor = dagster_dev.graphql(
        """{ sensorOrError(sensorSelector: {repositoryLocationName: "movesmart",
              repositoryName: "__repository__", sensorName: "streaming_supervisor"}) {
              ... on Sensor { id sensorState { status } } } }"""
    )["sensorOrError"]
    assert sensor["sensorState"]["status"] == "RUNNING"  # on by default
    stopped = dagster_dev.graphql(
        """mutation($id: String) { stopSensor(id: $id) { __typename
             ... on StopSensorMutationResult { instigationState { status } } } }""",
        {"id": sensor["id"]},
    )["stopSensor"]
    assert stopped["instigationState"]["status"] == "STOPPED"

    run = streaming_run["run"]
    assert next(r["status"] for r in dagster_dev.runs() if r["runId"] == run["runId"]) == "STARTED"
    assert jvms_of(dagster_dev.home), "a Spark JVM runs while the streaming run is STARTED"
    result = dagster_dev.graphql(
        """mutation($id: String!) { terminateRun(runId: $id) { __typename
             ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
        {"id": run["runId"]},
    )["terminateRun"]
    assert result["__typename"] == "TerminateRunSuccess", result
    wait_for(
        lambda: next(r["status"] for r in dagster_dev.runs() if r["runId"] == run["runId"]) == "CANCELED",
        180,
        "the run to be CANCELED",
    )
    wait_for(lambda: not jvms_of(dagster_dev.home), 60, "the Spark JVM to exit")
    # a clean stop: the job got SIGTERM from the op and ended after its current batch
    (child_log,) = (dagster_dev.home / "streaming" / "logs").glob(f"*-{run['runId'][:8]}.log")
    assert "[movesmart stream] stopped after" in child_log.read_text()
    # the sensor daemon has gone round since: a stopped supervisor launched nothing
    canceled_at = time.time()
    wait_for(
        lambda: _sensor_daemon_heartbeat(dagster_dev) > canceled_at, 180, "a sensor-daemon round", interval=3
    )
    assert not [r for r in dagster_dev.runs() if r["status"] in ("QUEUED", "STARTING", "STARTED")]


def test_ui_backfill_of_the_analytics(dagster_dev: DagsterDev, streaming_run: dict):
    """What *Materialize → partition range* in the UI sends: an asset backfill, run by the daemon."""
    from movesmart_dagster.defs.keys import ANALYTICS_KEYS

    days = ["2024-06-02", "2024-06-03"]  # the simulator's default clock starts 2024-06-03 08:00
    launched = dagster_dev.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {
            "params": {
                "partitionNames": days,
                "assetSelection": [{"path": k.path} for k in ANALYTICS_KEYS.values()],
                "fromFailure": False,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched

    def status() -> str | None:
        data = dagster_dev.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            {"id": launched["backfillId"]},
        )
        value = data["partitionBackfillOrError"]["status"]
        return value if value not in ("REQUESTED", "CANCELING", "FAILING") else None

    assert wait_for(status, 400, "the backfill to finish", interval=5) in ("COMPLETED", "COMPLETED_SUCCESS")
    for key in ANALYTICS_KEYS.values():
        mats = dagster_dev.graphql(
            """query($key: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $key) {
                 ... on Asset { assetMaterializations(partitions: $p) { partition runId } } } }""",
            {"key": {"path": key.path}, "p": days},
        )["assetOrError"]["assetMaterializations"]
        assert {m["partition"] for m in mats} == set(days), key
        assert len({m["runId"] for m in mats}) == 1  # the range ran as one run
    trips = dagster_dev.home / "warehouse" / "analytics" / "vehicle_trip_summary" / "event_date=2024-06-03"
    assert any(trips.glob("*.parquet"))
