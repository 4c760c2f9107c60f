"""Shared fixtures: real services on loopback, each test session on its own ports and home.

Nothing here is a mock. `kafka_stack` starts a real KRaft broker from the Maven jars on
free ports under a temporary MOVESMART_HOME, so the suite can run beside a developer's
own `make dev` stack (ports 9092/9093) without touching it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from movesmart_dagster.settings import Settings, load_settings
from movesmart_dagster.stack.kafka_broker import KafkaBroker
from movesmart_dagster.stack.processes import free_port


@dataclass(frozen=True)
class Stack:
    """A running local stack and the environment that points clients at it."""

    env: dict[str, str]
    settings: Settings

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        """os.environ plus this stack's settings, for `movesmart ...` subprocesses."""
        return {**os.environ, **self.env, **extra}


# what the local S3 endpoint (moto) takes: dummy values, never real credentials
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_REGION": "us-east-1",
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
}


def stack_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "MOVESMART_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{free_port()}",
        "MOVESMART_KAFKA_CONTROLLER_PORT": str(free_port()),
        "MOVESMART_KAFKA_HEAP": "512m",
    }
    env.update(extra)
    return env


def s3_stack_env(home: Path, catalog: str, warehouse: str, **extra: str) -> dict[str, str]:
    """`stack_env` for an S3 warehouse on the local endpoint (moto: S3 and Glue) at a free port,
    with the dummy credentials moto takes (never real ones)."""
    port = free_port()
    return stack_env(
        home,
        MOVESMART_CATALOG=catalog,
        MOVESMART_WAREHOUSE=warehouse,
        MOVESMART_S3_LOCAL_PORT=str(port),
        MOVESMART_S3_ENDPOINT=f"http://127.0.0.1:{port}",
        **DUMMY_AWS,
        **extra,
    )


def _running_stack(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Stack]:
    """A real broker on free ports under a fresh home, stopped when the fixture ends."""
    env = stack_env(tmp_path_factory.mktemp(name))
    settings = load_settings(env)
    broker = KafkaBroker(settings, heap="512m")
    broker.up()
    try:
        yield Stack(env=env, settings=settings)
    finally:
        broker.down()


@pytest.fixture(scope="session")
def kafka_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One real broker for the whole session (tests isolate themselves by topic names)."""
    yield from _running_stack(tmp_path_factory, "movesmart-home")


@pytest.fixture(scope="session")
def platform_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A broker of the Dagster platform tests alone: they need the real topic names
    (vehicle_data, ...) for themselves, so they do not share the session broker."""
    yield from _running_stack(tmp_path_factory, "platform-home")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's real HTTP server (S3 and Glue) on a free loopback port, per test module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- security: the logs of this test run hold no secret (issue 6) -------------------------
# Runs once at the end of the session, after every test: scans the log-like files that the
# tests produced (pytest's temporary folders, MOVESMART_HOME when set) for key material and
# for the secret values tests registered with secret_scan.add_canary. A finding fails the run.


def _security_log_roots(config: pytest.Config) -> list[Path]:
    roots: list[Path] = []
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        roots.append(factory.getbasetemp())
    home = os.environ.get("MOVESMART_HOME")
    if home:
        roots.append(Path(home))
    return roots


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from movesmart_dagster_tests.secret_scan import scan_logs

    findings = scan_logs(_security_log_roots(session.config))
    session.config.stash[_SECURITY_LOG_FINDINGS] = findings
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    findings = terminalreporter.config.stash.get(_SECURITY_LOG_FINDINGS, [])
    if findings:
        terminalreporter.section("secrets found in the logs of this test run", red=True)
        for finding in findings[:50]:
            terminalreporter.write_line(finding)


_SECURITY_LOG_FINDINGS = pytest.StashKey[list[str]]()
