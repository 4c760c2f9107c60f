"""Patterns of key material and a scanner, shared by test_security.py and the log check.

Why a module of its own: the same patterns judge the repository (test_security.py) and the
logs that the whole test run produced (the session-finish hook at the end of conftest.py),
so a pattern added once guards both. Tests that handle a secret value on purpose register
it with `add_canary`; the log check then also looks for that exact value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws_?secret_?access_?key\W{0,4}[:=]\W{0,4}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "private key block": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token or webhook": re.compile(
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/T[A-Z0-9]+/"
    ),
}
# `password: value` / `PASSWORD=value` in configuration, docs and logs; placeholders pass
_PASSWORD_ASSIGNMENT = re.compile(
    r"""(?ix)\b[\w.-]*(?:password|passwd|secret_access_key|client_secret)\b["']?[ \t]*[:=][ \t]*["']?([^\s"',}]*)"""
)
_PLACEHOLDER_VALUES = re.compile(
    r"""(?xi)^(
        |\$\{?[A-Za-z_][\w:?\-\s/.]*\}?        # ${VAR}, ${VAR:?message}, $VAR
        |<[^>]*>?|\*+|\.\.\.|null|none|\[hidden\]|redacted|\*\*\*\*\*\*\*\*\*\*
        |testing|change-?me|\{|\{env:?|env|\(|pw|pwd|\{pwd\};?|true|false
    )$"""
)
CONFIG_SUFFIXES = {
    ".yml",
    ".yaml",
    ".env",
    ".example",
    ".properties",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".md",
}
LOG_NAME = re.compile(r"\.(log|out|err|jsonl|txt)(\.\d+)?$|\.log\.")
KAFKA_SEGMENT = re.compile(r"^\d{20}\.log$")  # broker data (records), not a log of messages

_CANARIES: set[str] = set()


def add_canary(value: str) -> str:
    """Register a secret value a test uses; the log check fails if it shows up in a log."""
    _CANARIES.add(value)
    return value


def canaries() -> frozenset[str]:
    return frozenset(_CANARIES)


def find_secrets(text: str, config_like: bool, extra: Iterable[str] = ()) -> list[str]:
    """What looks like key material in `text` (each finding shortened, never printed whole)."""
    found = []
    for name, pattern in SECRET_PATTERNS.items():
        found += [f"{name}: {m.group(0)[:12]}..." for m in pattern.finditer(text)]
    if config_like:
        for m in _PASSWORD_ASSIGNMENT.finditer(text):
            if not _PLACEHOLDER_VALUES.match(m.group(1).strip()):
                found.append(f"password assigned: {m.group(0)[: m.start(1) - m.start(0)]}...")
    found += [f"a test's secret value: {c[:4]}..." for c in extra if c and c in text]
    return found


def scan_logs(roots: Iterable[Path], max_bytes: int = 20_000_000) -> list[str]:
    """Findings in every log-like file below `roots` (the newest `max_bytes` of each)."""
    findings: list[str] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path in seen or not LOG_NAME.search(path.name) or KAFKA_SEGMENT.match(path.name):
                continue
            if not path.is_file():
                continue
            seen.add(path)
            with path.open("rb") as fh:
                size = path.stat().st_size
                fh.seek(max(0, size - max_bytes))
                text = fh.read().decode("utf-8", errors="replace")
            findings += [f"{path}: {f}" for f in find_secrets(text, config_like=True, extra=canaries())]
    return findings
