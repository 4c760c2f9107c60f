"""End to end through `dagster dev`: webserver + daemon, a broker, the simulator and real Spark.

One `dagster dev` (free port, DAGSTER_HOME in tmp) serves every test of this module, in order:
1. the supervisor sensor (on by default) launches the streaming run by itself, and all five
   tables get materializations with the per-batch metadata — checked over GraphQL;
2. headless Chromium (Debian's, driven by Playwright) opens the asset graph, finds the
   tables and `dev_smartcity`, and saves a screenshot (docs/dagster-asset-graph.png);
3. with the supervisor stopped, terminating the run over GraphQL (what the UI's Terminate
   button sends) cancels it and leaves no Spark JVM behind;
4. an asset backfill of the daily analytics over two days, launched as the UI launches it,
   is run by the daemon as one run and materializes both partitions.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from movesmart_dagster.schemas import TABLES
from movesmart_dagster.settings import load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port, wait_for_port
from movesmart_dagster_tests.conftest import stack_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCREENSHOT = REPO / "docs" / "dagster-asset-graph.png"


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
                 ... on Asset { assetMaterializations(limit: $limit) { runId timestamp
                   metadataEntries { label ... on IntMetadataEntry { intValue }
                                     ... on FloatMetadataEntry { floatValue }
                                     ... on JsonMetadataEntry { jsonString } } } } } }""",
            {"key": {"path": path}, "limit": limit},
        )
        asset = data["assetOrError"]
        return asset.get("assetMaterializations", []) if asset else []


def _wait(predicate, timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _jvms_of(home: Path) -> list[int]:
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


def _stop_group(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


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
        "MOVESMART_SPARK_MASTER": "local[2]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "1g",
    }
    (home / "dagster").mkdir(parents=True)
    broker = KafkaBroker(load_settings(env), heap="512m")
    broker.up()
    log = home / "dagster-dev.log"
    procs: list[subprocess.Popen] = []
    try:
        # data first, fast: seed 7 makes emergencies early, so all five topics get records
        sim = subprocess.run(
            [str(BIN / "movesmart"), "simulate", "--vehicles", "5", "--seed", "7", "--max-events", "3000"]
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
        _wait(lambda: _location_loaded(dev), 180, "the code location to load")
        yield dev
    finally:
        for proc in procs:
            _stop_group(proc, signal.SIGINT, 120)
        broker.down()
        leftovers = _jvms_of(home)
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


def test_supervisor_launches_streaming_and_tables_materialize(dagster_dev: DagsterDev):
    started = time.monotonic()
    run = _wait(
        lambda: next((r for r in dagster_dev.runs() if r["status"] == "STARTED"), None),
        240,
        "the supervisor to launch a streaming run",
    )
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["movesmart/launched_by"] == "streaming_supervisor"
    assert "dagster/sensor_name" in tags and tags["dagster/sensor_name"] == "streaming_supervisor"

    def all_tables() -> dict[str, dict] | None:
        latest = {t: dagster_dev.materializations(["smartcity", t], 1) for t in (*TABLES, "quarantine")}
        return latest if all(latest.values()) else None

    latest = _wait(all_tables, 300, "materializations of the five tables and quarantine", interval=3)
    print(f"first materializations of all tables {time.monotonic() - started:.0f}s after dagster dev was up")
    for table, mats in latest.items():
        assert mats[0]["runId"] == run["runId"], table
        meta = {e["label"]: e for e in mats[0]["metadataEntries"]}
        for label in ("rows_added", "total_rows", "batch_id", "offsets", "freshness_lag_s"):
            assert label in meta, (table, sorted(meta))
        assert meta["rows_added"]["intValue"] > 0
        assert meta["total_rows"]["intValue"] >= meta["rows_added"]["intValue"]
        if table != "quarantine":  # quarantine's rows are counted in their topic's offset ranges
            assert json.loads(meta["offsets"]["jsonString"]), table
    # every record the simulator sent is in the tables, and its offsets were reported
    totals = {t: dagster_dev.materializations(["smartcity", t], 1)[0] for t in TABLES}
    rows = sum(
        next(e["intValue"] for e in m["metadataEntries"] if e["label"] == "total_rows")
        for m in totals.values()
    )
    assert rows > 2500


def test_ui_asset_graph_in_headless_chromium(dagster_dev: DagsterDev):
    from playwright.sync_api import sync_playwright

    SCREENSHOT.parent.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
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
            page.screenshot(path=str(SCREENSHOT))
            content = page.content()
        finally:
            browser.close()
    for name in (*TABLES, "quarantine", "dev_smartcity", "glue_tables"):
        assert name in content, name
    assert SCREENSHOT.stat().st_size > 20_000


def test_terminating_the_run_stops_spark(dagster_dev: DagsterDev):
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

    run = next(r for r in dagster_dev.runs() if r["status"] == "STARTED")
    assert _jvms_of(dagster_dev.home), "a Spark JVM runs while the streaming run is STARTED"
    result = dagster_dev.graphql(
        """mutation($id: String!) { terminateRun(runId: $id) { __typename
             ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
        {"id": run["runId"]},
    )["terminateRun"]
    assert result["__typename"] == "TerminateRunSuccess", result
    _wait(
        lambda: next(r["status"] for r in dagster_dev.runs() if r["runId"] == run["runId"]) == "CANCELED",
        180,
        "the run to be CANCELED",
    )
    _wait(lambda: not _jvms_of(dagster_dev.home), 60, "the Spark JVM to exit")
    # a clean stop: the job got SIGTERM from the op and ended after its current batch
    (child_log,) = (dagster_dev.home / "streaming" / "logs").glob(f"*-{run['runId'][:8]}.log")
    assert "[movesmart stream] stopped after" in child_log.read_text()
    time.sleep(12)  # two supervisor intervals: stopped, it launches nothing
    assert not [r for r in dagster_dev.runs() if r["status"] in ("QUEUED", "STARTING", "STARTED")]


def test_ui_backfill_of_the_analytics(dagster_dev: DagsterDev):
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

    assert _wait(status, 400, "the backfill to finish", interval=5) in ("COMPLETED", "COMPLETED_SUCCESS")
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
