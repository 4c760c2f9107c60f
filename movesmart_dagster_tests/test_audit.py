"""Dependencies audited: pip-audit over requirements.lock (tools/audit_deps.py, run by `make test`)
and the Maven jars listed in the README (tools/jar_versions.py).

The advisory services pip-audit uses (PyPI's per-version JSON API, OSV) do not answer on this
machine, so the audit's verdicts are proven against a stand-in OSV endpoint on loopback, a
small HTTP server that speaks OSV's query API: pip-audit itself runs for real, over the real lock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from movesmart_dagster.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import jar_versions  # noqa: E402


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, ver = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = ver.strip()
    return pins


class _FakeOsv(BaseHTTPRequestHandler):
    vulnerable: dict[str, str] = {}  # package -> advisory id
    queries: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, ver = body["package"]["name"], body["version"]
        type(self).queries.append((name, ver))
        answer: dict = {}
        if name in self.vulnerable:
            answer = {
                "vulns": [
                    {
                        "id": self.vulnerable[name],
                        "summary": "a test advisory",
                        "affected": [
                            {
                                "package": {"name": name, "ecosystem": "PyPI"},
                                "ranges": [
                                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}
                                ],
                            }
                        ],
                    }
                ]
            }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_osv() -> Iterator[tuple[str, type[_FakeOsv]]]:
    handler = type("Osv", (_FakeOsv,), {"vulnerable": {}, "queries": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query", handler
    finally:
        server.shutdown()
        server.server_close()


def _audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "audit_deps.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_audit_queries_every_locked_pin_and_passes_when_none_is_known(fake_osv):
    url, handler = fake_osv
    run = _audit("--osv-url", url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "No known vulnerabilities found" in run.stdout + run.stderr
    assert dict(handler.queries[1:]) == _locked()  # the first query is the probe


def test_audit_fails_on_a_vulnerable_pin_naming_it(fake_osv):
    url, handler = fake_osv
    handler.vulnerable = {"requests": "PYSEC-TEST-1"}
    run = _audit("--osv-url", url)
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(r"requests\s+2\.34\.2\s+PYSEC-TEST-1\s+999", run.stdout), run.stdout


def test_audit_without_an_answering_service_says_so_in_one_line(fake_osv):
    url, _ = fake_osv
    dead = url.rsplit(":", 1)[0] + ":1/v1/query"  # nothing listens on port 1
    run = _audit("--osv-url", dead)
    assert run.returncode == 0 and run.stdout.count("\n") == 1, run.stdout + run.stderr
    assert run.stdout.startswith(
        "dependency audit: skipped, no advisory service answers here (osv: unreachable"
    )
    assert _audit("--osv-url", dead, "--require-service").returncode == 1


def test_pip_audit_is_pinned_in_the_lock_and_the_dev_extras():
    assert "pip-audit" in _locked()
    pyproject = (REPO / "pyproject.toml").read_text()
    assert f'"pip-audit=={_locked()["pip-audit"]}"' in pyproject


def test_readme_lists_every_resolved_jar_by_maven_coordinates():
    jars_dir = load_settings().jars_dir
    readme = (REPO / "README.md").read_text()
    block = jar_versions.readme_block(readme)
    assert block is not None, "README has no generated jar list: run tools/jar_versions.py --write"
    listed: dict[str, list[str]] = {}
    folder = None
    for line in block.splitlines():
        heading = [f for f, title in jar_versions.FOLDERS.items() if line.startswith(title)]
        if heading:
            folder = heading[0]
            listed[folder] = []
        elif folder and line and not line.startswith(("```", "<!--")):
            listed[folder].append(line)
    for name in jar_versions.FOLDERS:
        on_disk = sorted(p.name for p in (jars_dir / name).glob("*.jar"))
        assert on_disk, f"no jars in {jars_dir / name}: run make setup"
        assert sorted(jar_versions.jar_file_name(e) for e in listed.get(name, [])) == on_disk, (
            f"README's {name} jars differ from {jars_dir / name}: run .venv/bin/python tools/jar_versions.py --write"
        )
        # every third-party jar is named by group:artifact:version, the form scanners take
        assert all(e.count(":") == 2 or "(ours" in e for e in listed[name]), listed[name]
