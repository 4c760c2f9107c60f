"""The city simulator: the model without Kafka, then `movesmart simulate` against real brokers.

Kafka tests read back exactly the offsets a run wrote (high watermarks before and after),
so they share the session broker with other tests; the restart test has its own broker.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from movesmart_dagster import contract
from movesmart_dagster.kafka_log import client_logging
from movesmart_dagster.schemas import RECORDS_BY_TOPIC, TOPICS
from movesmart_dagster.settings import load_settings
from movesmart_dagster.simulator import (
    BUILTIN_ROUTES,
    DEFAULT_START,
    DEFECTS,
    SimConfig,
    expected_bad_count,
    fleet,
    iter_records,
)
from movesmart_dagster.simulator.fleet import MIN_SPEED_KMH, uuid4_from
from movesmart_dagster.simulator.routes import haversine_km
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port, pid_alive
from movesmart_dagster_tests.conftest import Stack, stack_env

SIMULATE = [sys.executable, "-m", "movesmart_dagster.cli", "simulate", "--no-progress"]


# --- helpers --------------------------------------------------------------------------------
def _records(**kw: object) -> list:
    return list(iter_records(SimConfig(**kw)))  # type: ignore[arg-type]


def _valid(topic: str, value: bytes) -> contract.Verdict:
    return contract.validate(RECORDS_BY_TOPIC[topic], value)


def _watermarks(bootstrap: str) -> dict[tuple[str, int], int]:
    """High watermark of every partition of the five topics (absent topics: nothing)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4()}", **client_logging()})
    try:
        md = c.list_topics(timeout=15)
        marks = {}
        for t in TOPICS:
            if t in md.topics:
                for p in md.topics[t].partitions:
                    marks[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=15)[1]
        return marks
    finally:
        c.close()


def _wait_for_records(bootstrap: str, before: dict, at_least: int, timeout: float = 60.0) -> None:
    """Return once the broker holds `at_least` records more than `before` (the run is producing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            marks = _watermarks(bootstrap)
        except KafkaException:  # a topic the run just created may have no leader yet
            marks = {}
        if marks and sum(marks.values()) - sum(before.get(k, 0) for k in marks) >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} records reached the broker in {timeout:.0f} s")


def _read_window(bootstrap: str, before: dict, after: dict) -> list[tuple[str, int, bytes, bytes]]:
    """Every record between two sets of watermarks, as (topic, partition, key, value) in offset order."""
    wanted = {tp: (before.get(tp, 0), hi) for tp, hi in after.items() if hi > before.get(tp, 0)}
    if not wanted:
        return []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rd-{uuid.uuid4()}",
            "enable.auto.commit": False,
            **client_logging(),
        }
    )
    c.assign([TopicPartition(t, p, lo) for (t, p), (lo, _) in wanted.items()])
    out: dict[tuple[str, int], list] = defaultdict(list)
    need = sum(hi - lo for lo, hi in wanted.values())
    got, deadline = 0, time.monotonic() + 60
    while got < need and time.monotonic() < deadline:
        for m in c.consume(num_messages=10_000, timeout=1.0):
            assert m.error() is None, m.error()
            tp = (m.topic(), m.partition())
            if m.offset() < wanted[tp][1]:
                out[tp].append((m.offset(), m.key(), m.value()))
                got += 1
    c.close()
    assert got == need, f"read {got} of {need} records"
    return [(t, p, k, v) for (t, p), rows in out.items() for _, k, v in sorted(rows, key=lambda r: r[0])]


def _simulate(stack: Stack, *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, dict]:
    summary_file = Path(stack.env["MOVESMART_HOME"]) / f"summary-{uuid.uuid4().hex}.json"
    proc = subprocess.run(
        [*SIMULATE, "--summary-json", str(summary_file), *args],
        env=stack.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return proc, summary


def _run_and_read(stack: Stack, *args: str) -> tuple[subprocess.CompletedProcess, dict, list]:
    bootstrap = stack.settings.kafka_bootstrap_servers
    before = _watermarks(bootstrap)
    proc, summary = _simulate(stack, *args)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc, summary, _read_window(bootstrap, before, _watermarks(bootstrap))


# --- the model, without Kafka -----------------------------------------------------------------
def test_uuid4_from_matches_the_uuid_module():
    for bits in (0, 2**128 - 1, 0x1234567890ABCDEF1234567890ABCDEF, 7 << 100):
        assert uuid4_from(bits) == str(uuid.UUID(int=bits, version=4))


def test_one_wide_random_draw_equals_the_single_draws_it_replaces():
    # Vehicle.step draws its vehicle id, gps id, snapshot and traffic id with one getrandbits(416)
    one, singly = random.Random("x"), random.Random("x")
    for _ in range(50):
        x = one.getrandbits(416)
        vehicle, gps, snap, traffic = (singly.getrandbits(n) for n in (128, 128, 3, 128))
        assert x & (2**128 - 1) == vehicle and (x >> 128) & (2**128 - 1) == gps
        assert (x >> 285) & 7 == snap and x >> 288 == traffic
        h = f"{(x & fleet._IDS_CLEAR) | fleet._IDS_SET:0104x}"
        assert f"{h[72:80]}-{h[80:84]}-{h[84:88]}-{h[88:92]}-{h[92:104]}" == uuid4_from(vehicle)
        assert f"{h[40:48]}-{h[48:52]}-{h[52:56]}-{h[56:60]}-{h[60:72]}" == uuid4_from(gps)
        assert f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}" == uuid4_from(traffic)
        assert one.random() == singly.random()  # and the stream goes on in step


@pytest.mark.parametrize(
    ("start", "tick"),
    [
        (datetime(2024, 3, 31, 0, 59, 50, tzinfo=UTC), 5.0),  # whole seconds: timestamps by concatenation
        (datetime(2024, 3, 31, 0, 59, 50, tzinfo=timezone(timedelta(hours=2))), 5.0),  # another offset
        (datetime(2024, 3, 31, 0, 59, 59, 600_000, tzinfo=UTC), 0.7),  # fractions: the datetime path
    ],
)
@pytest.mark.parametrize("wire_format", ["canonical", "seed"])
def test_timestamps_are_tick_time_plus_the_vehicle_stagger(start, tick, wire_format):
    cfg = SimConfig(vehicles=3, start_time=start, tick_seconds=tick, max_events=600, wire_format=wire_format)
    f = fleet.Fleet(cfg)
    n = 0
    for t, (chunk, _) in enumerate(f.ticks()):
        for _, value, key in chunk:
            vehicle = f.vehicles[int(key.decode().removeprefix("vehicle-")) - 1]
            at = start + timedelta(seconds=t * tick) + vehicle.stagger
            at = at.replace(tzinfo=None) if wire_format == "seed" else at
            assert json.loads(value)["timestamp"] == at.isoformat(timespec="milliseconds")
            n += 1
    assert n >= 500


def test_same_seed_gives_byte_identical_records_and_another_seed_does_not():
    a = _records(vehicles=3, seed=7, max_events=3000, bad_ratio=0.05)
    b = _records(vehicles=3, seed=7, max_events=3000, bad_ratio=0.05)
    c = _records(vehicles=3, seed=8, max_events=3000, bad_ratio=0.05)
    assert a == b and len(a) == 3000
    assert [r.value for r in a] != [r.value for r in c]
    ids = [json.loads(r.value)["id"] for r in a if r.defect is None]
    assert len(ids) == len(set(ids))  # ids are unique ...
    assert all(uuid.UUID(i).version == 4 for i in ids)  # ... and well-formed v4 uuids


def test_a_vehicle_stream_does_not_depend_on_fleet_size():
    small = [r for r in _records(vehicles=2, max_events=800) if r.key == b"vehicle-00001"]
    large = [r for r in _records(vehicles=6, max_events=2400) if r.key == b"vehicle-00001"]
    assert small == large[: len(small)]


@pytest.mark.parametrize("wire_format", ["canonical", "seed"])
def test_every_record_is_valid_and_carries_the_schema_fields_in_order(wire_format):
    recs = _records(vehicles=5, wire_format=wire_format)  # a full London -> Birmingham run
    counts = Counter(r.topic for r in recs)
    assert set(counts) == set(TOPICS)
    assert counts["vehicle_data"] == counts["gps_data"] == counts["traffic_data"] == counts["weather_data"]
    for r in recs:
        assert _valid(r.topic, r.value).valid, (r.topic, r.value)
        doc = json.loads(r.value)
        assert list(doc) == RECORDS_BY_TOPIC[r.topic].field_names
        assert doc["deviceId"].encode() == r.key
        loc = doc.get("location")
        if wire_format == "seed":
            assert loc is None or isinstance(loc, list)
            assert contract.parse_timestamp(doc["timestamp"]) is not None and "+" not in doc["timestamp"]
        else:
            assert loc is None or set(loc) == {"latitude", "longitude"}
            assert doc["timestamp"].endswith("+00:00")


def test_emergencies_are_rare_and_go_active_then_resolved():
    recs = _records(vehicles=12, routes=("all",))
    emergencies = [json.loads(r.value) for r in recs if r.topic == "emergency_data"]
    readings = sum(1 for r in recs if r.topic == "vehicle_data")
    assert 0 < len(emergencies) < 0.01 * readings
    by_incident: dict[str, list[dict]] = defaultdict(list)
    for e in emergencies:
        by_incident[e["incidentId"]].append(e)
    for events in by_incident.values():
        assert [e["status"] for e in events] == ["Active", "Resolved"]
        assert events[0]["timestamp"] < events[1]["timestamp"]
        assert events[0]["type"] == events[1]["type"] and events[0]["location"] == events[1]["location"]


def test_speed_reacts_to_weather_and_weather_evolves_smoothly():
    recs = _records(vehicles=24, routes=("all",), seed=3)
    weather = {
        (d["deviceId"], d["timestamp"]): d
        for d in (json.loads(r.value) for r in recs if r.topic == "weather_data")
    }
    speeds: dict[str, list[float]] = defaultdict(list)
    last_temp: dict[str, float] = {}
    for r in recs:
        if r.topic != "vehicle_data":
            continue
        v = json.loads(r.value)
        w = weather[(v["deviceId"], v["timestamp"])]
        if v["speed"] > 0:
            speeds[w["weatherCondition"]].append(v["speed"])
        if v["deviceId"] in last_temp:  # 5 s apart: at most a few tenths of a degree
            assert abs(w["temperature"] - last_temp[v["deviceId"]]) < 1.0
        last_temp[v["deviceId"]] = w["temperature"]
    mean = {cond: statistics.mean(s) for cond, s in speeds.items() if len(s) > 200}
    assert {"Sunny", "Rain"} <= set(mean)
    assert mean["Rain"] < mean["Sunny"]
    for bad in ("Snow", "Fog"):
        if bad in mean:
            assert mean[bad] < mean["Rain"]


@pytest.mark.parametrize("route", sorted(BUILTIN_ROUTES))
def test_every_builtin_route_terminates_at_its_destination(route):
    """The seed's loop never ended on most routes; here each vehicle stops where it should."""
    r = BUILTIN_ROUTES[route]
    tick = 5.0
    # the 5 km/h speed floor bounds the journey; the iterator must end well before
    bound = 4 * (math.ceil(r.distance_km / (MIN_SPEED_KMH * tick / 3600)) + 1)
    recs = []
    for rec in iter_records(SimConfig(vehicles=1, routes=(route,), tick_seconds=tick)):
        recs.append(rec)
        assert len(recs) <= bound, "did not terminate"
    positions = [json.loads(x.value) for x in recs if x.topic == "vehicle_data"]
    last = positions[-1]
    assert (last["location"]["latitude"], last["location"]["longitude"]) == (r.end.latitude, r.end.longitude)
    assert last["speed"] == 0.0
    first = positions[0]["location"]
    assert haversine_km(first["latitude"], first["longitude"], r.start.latitude, r.start.longitude) < 1.0
    hours = len(positions) * tick / 3600
    assert 40 < r.distance_km / hours < 130  # a plausible average speed


@pytest.mark.parametrize("ratio", [0.1, 0.37, 1.0])
def test_bad_ratio_gives_exactly_the_expected_malformed_records(ratio):
    good = _records(vehicles=4, seed=5, max_events=2000)
    mixed = _records(vehicles=4, seed=5, max_events=2000, bad_ratio=ratio)
    bad = [r for r in mixed if r.defect]
    assert len(bad) == expected_bad_count(ratio, 2000) == math.floor(ratio * 2000)
    for g, m in zip(good, mixed, strict=True):
        verdict = _valid(m.topic, m.value)
        assert (m.topic, m.key) == (g.topic, g.key)
        if m.defect is None:
            assert m.value == g.value and verdict.valid
        else:
            assert verdict.code == m.defect, (m.defect, verdict.reason, m.value)
    if ratio >= 0.1:
        assert {r.defect for r in bad} == set(DEFECTS)


def test_simulated_and_realtime_clocks():
    start = datetime(2023, 1, 2, 6, 30, tzinfo=UTC)
    recs = _records(vehicles=2, start_time=start, max_events=400)
    stamps = [contract.parse_timestamp(json.loads(r.value)["timestamp"]) for r in recs]
    assert start <= min(stamps) < start + timedelta(seconds=1)
    assert max(stamps) < start + timedelta(seconds=5 * 50 + 1)
    before = datetime.now(UTC)
    live = _records(vehicles=2, realtime=True, max_events=40)
    for r in live:
        ts = contract.parse_timestamp(json.loads(r.value)["timestamp"])
        assert before - timedelta(seconds=1) <= ts <= datetime.now(UTC) + timedelta(seconds=1)
    default = json.loads(_records(vehicles=1, max_events=1)[0].value)["timestamp"]
    assert DEFAULT_START <= contract.parse_timestamp(default) < DEFAULT_START + timedelta(seconds=1)


# --- movesmart simulate against a real broker --------------------------------------------------
def test_cli_output_is_byte_identical_per_seed_and_matches_the_generator(kafka_stack):
    args = ("--seed", "11", "--vehicles", "3", "--max-events", "3000", "--bad-ratio", "0.1")
    proc, summary, first = _run_and_read(kafka_stack, *args)
    _, _, second = _run_and_read(kafka_stack, *args)
    expected = _records(vehicles=3, seed=11, max_events=3000, bad_ratio=0.1)

    # the same bytes both times, and exactly what the generator yields
    by_topic = lambda rows: sorted((t, k, v) for t, _, k, v in rows)  # noqa: E731
    assert by_topic(first) == by_topic(second) == sorted((r.topic, r.key, r.value) for r in expected)
    # counts per topic: broker == summary == generator
    on_broker = Counter(t for t, _, _, _ in first)
    assert on_broker == Counter(r.topic for r in expected)
    assert summary["produced"] == {t: on_broker.get(t, 0) for t in TOPICS}
    assert summary["total"] == 3000 and summary["failed_total"] == 0 and summary["ok"]
    assert summary["stop_reason"] == "max_events"
    assert "failed deliveries: 0" in proc.stdout and "vehicle_data" in proc.stdout
    # 300 malformed, each rejected by the contract; every other record valid
    invalid = [v for t, _, _, v in first if not _valid(t, v).valid]
    assert len(invalid) == summary["malformed"] == 300
    # per-vehicle order survives: within a partition, a key's records come in generator order
    order = defaultdict(list)
    for r in expected:
        order[(r.topic, r.key)].append(r.value)
    seen = defaultdict(list)
    for t, _, k, v in first:
        seen[(t, k)].append(v)
    assert seen == order


def test_cli_ends_on_arrival_on_every_builtin_route(kafka_stack):
    n = len(BUILTIN_ROUTES)
    proc, summary, rows = _run_and_read(kafka_stack, "--routes", "all", "--vehicles", str(n), "--seed", "2")
    assert summary["stop_reason"] == "arrived" and summary["arrived"] == n
    expected = Counter(r.topic for r in _records(vehicles=n, routes=("all",), seed=2))
    assert Counter(t for t, _, _, _ in rows) == expected
    assert all(_valid(t, v).valid for t, _, _, v in rows)


def test_cli_rate_and_duration_limits(kafka_stack):
    started = time.monotonic()
    proc, summary = _simulate(kafka_stack, "--rate", "1000", "--duration", "1.5", "--vehicles", "50")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert summary["stop_reason"] == "duration"
    assert 500 <= summary["total"] <= 1600  # capped by the rate; lower bound loose on a busy machine
    assert elapsed >= 1.4


def test_cli_broker_unreachable_is_one_clear_line_and_exit_1(tmp_path):
    address = f"localhost:{free_port()}"  # nothing listens there
    env = {**stack_env(tmp_path / "home"), "KAFKA_BOOTSTRAP_SERVERS": address}
    stack = Stack(env=env, settings=load_settings(env))
    started = time.monotonic()
    proc, summary = _simulate(stack, "--connect-timeout", "2")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "unreachable" in lines[0] and address in lines[0] and "2s" in lines[0]
    assert time.monotonic() - started < 20 and not summary


def test_cli_bad_options_exit_with_usage_errors(kafka_stack):
    proc, _ = _simulate(kafka_stack, "--route", "atlantis-eldorado")
    assert proc.returncode == 2 and "unknown route" in proc.stderr
    proc, _ = _simulate(kafka_stack, "--bad-ratio", "1.5")
    assert proc.returncode == 2
    listing = subprocess.run(
        [*SIMULATE, "--list-routes"],
        env=kafka_stack.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and all(name in listing.stdout for name in BUILTIN_ROUTES)


@pytest.mark.parametrize("how", ["graceful", "crash"])
def test_broker_restart_mid_run_loses_and_duplicates_nothing(tmp_path, how):
    """A controlled restart, and a SIGKILL: acked records survive, retries are de-duplicated."""
    env = stack_env(tmp_path / "home")
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    stack = Stack(env=env, settings=settings)
    summary_file = tmp_path / "summary.json"
    args = ("--seed", "21", "--vehicles", "40", "--rate", "15000", "--max-events", "120000")
    try:
        run = subprocess.Popen(
            [*SIMULATE, "--summary-json", str(summary_file), *args],
            env=stack.subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for_records(settings.kafka_bootstrap_servers, {}, at_least=5_000)  # mid-run
        assert run.poll() is None
        if how == "graceful":
            assert broker.down()
        else:
            pid = broker.status().pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.1)
        assert run.poll() is None  # still producing while the broker is gone
        time.sleep(2.0)  # the outage's length (not a wait for a condition): records queue up meanwhile
        broker.up()
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err + out
        summary = json.loads(summary_file.read_text())
        assert summary["total"] == 120_000 and summary["failed_total"] == 0

        rows = _read_window(
            settings.kafka_bootstrap_servers, {}, _watermarks(settings.kafka_bootstrap_servers)
        )
        assert len(rows) == 120_000  # nothing lost, nothing duplicated
        ids = [json.loads(v)["id"] for _, _, _, v in rows]
        assert len(set(ids)) == len(ids)
        expected = _records(vehicles=40, seed=21, max_events=120_000)
        assert sorted((t, k, v) for t, _, k, v in rows) == sorted((r.topic, r.key, r.value) for r in expected)
    finally:
        broker.down()


def test_sigterm_stops_cleanly_and_everything_produced_is_on_the_broker(kafka_stack):
    """A supervisor's SIGTERM: stop producing, flush, summary, exit 0; broker count == summary."""
    bootstrap = kafka_stack.settings.kafka_bootstrap_servers
    before = _watermarks(bootstrap)
    summary_file = Path(kafka_stack.env["MOVESMART_HOME"]) / f"summary-{uuid.uuid4().hex}.json"
    run = subprocess.Popen(
        [*SIMULATE, "--summary-json", str(summary_file), "--rate", "2000", "--seed", "31"],
        env=kafka_stack.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_records(bootstrap, before, at_least=500)  # producing: stop it mid-run
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err + out
    summary = json.loads(summary_file.read_text())
    assert summary["stop_reason"] == "interrupted" and 0 < summary["total"] < 31_000
    rows = _read_window(bootstrap, before, _watermarks(bootstrap))
    assert Counter(t for t, _, _, _ in rows) == Counter({t: n for t, n in summary["produced"].items() if n})
