"""Audit the locked Python dependencies for known vulnerabilities with pip-audit (`make test` runs this).

pip-audit asks an advisory service about each pinned version: PyPI's JSON API
(`https://pypi.org/pypi/<name>/<version>/json`, its default) or OSV (`api.osv.dev`). Where
neither answers — the development machine of this repository: its PyPI access serves the
per-project JSON but answers 404 for every per-version URL, and api.osv.dev does not resolve —
pip-audit skips every package and still prints "No known vulnerabilities found": a green that
audited nothing. So this script probes first. With a service that answers, it runs a strict
audit of requirements.lock (a package it cannot check fails the run, as does any known
vulnerability). Without one it says so in one line and exits 0, or 1 with --require-service.

    .venv/bin/python tools/audit_deps.py [--require-service] [--osv-url URL]

`--osv-url` audits against another OSV-compatible endpoint (a mirror; the tests' stand-in).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements.lock"
TIMEOUT_S = 8.0
DEFAULT_OSV_URL = "https://api.osv.dev/v1/query"


def _answers(request: urllib.request.Request) -> str | None:
    """None if the service answered 200, else why not (one phrase)."""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"unreachable ({getattr(err, 'reason', err)})"


def probe_services(osv_url: str | None = None) -> tuple[str | None, dict[str, str]]:
    """The first advisory service that answers a real query ("pypi" or "osv"), and why the others
    did not. With `osv_url`, only that endpoint is tried."""
    pinned = version("pip-audit")
    why: dict[str, str] = {}
    if osv_url is None:
        pypi = urllib.request.Request(f"https://pypi.org/pypi/pip-audit/{pinned}/json")
        if (reason := _answers(pypi)) is None:
            return "pypi", why
        why["pypi"] = f"per-version JSON API {reason}"
    query = {"package": {"name": "pip-audit", "ecosystem": "PyPI"}, "version": pinned}
    osv = urllib.request.Request(
        osv_url or DEFAULT_OSV_URL,
        data=json.dumps(query).encode(),
        headers={"Content-Type": "application/json"},
    )
    if (reason := _answers(osv)) is None:
        return "osv", why
    why["osv"] = reason
    return None, why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--require-service", action="store_true", help="fail when no advisory service answers"
    )
    parser.add_argument("--osv-url", help="an OSV-compatible endpoint instead of PyPI or api.osv.dev")
    args = parser.parse_args(argv)
    service, why = probe_services(args.osv_url)
    if service is None:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in why.items())
        print(
            f"dependency audit: skipped, no advisory service answers here ({reasons}); "
            "run tools/audit_deps.py where PyPI's JSON API or OSV is reachable",
            flush=True,
        )
        return 1 if args.require_service else 0
    # every line of the lock is pinned: no resolution, no pip run, nothing installed
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "--strict",
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "-s",
        service,
        "-r",
        str(LOCK),
        *(["--osv-url", args.osv_url] if args.osv_url else []),
    ]
    print(f"dependency audit: pip-audit against {service} over {LOCK.name}", flush=True)
    return subprocess.run(cmd, cwd=REPO).returncode


if __name__ == "__main__":
    sys.exit(main())
