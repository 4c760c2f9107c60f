"""The IAM policy documents in deploy/iam/ parse, are least-privilege, and grant what Iceberg needs.

What "scoped" means here: every S3 action names the warehouse bucket or its prefix (never
`*`, never `s3:*`), listing is limited to the warehouse prefix by condition, Glue access
is limited to the one database, the Redshift role is read-only and trusted by Redshift of
this account only, and no statement allows `*` actions. The placeholders (BUCKET_NAME,
WAREHOUSE_PREFIX, ...) are the ones the README tells the reader to replace; a rendered
copy must leave none behind.

What "enough" means: the Glue actions are those of Iceberg's Glue catalog (Spark's and
pyiceberg's: read, create and update the database's tables; no partition and no crawler
action, since the catalog registers each commit itself). `test_streaming_s3.py` checks them
against the calls a real Glue-mode run made to the moto endpoint (`granted_actions`,
`actions_of_recorded_requests` below).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from movesmart_dagster.settings import REPO_ROOT

IAM = REPO_ROOT / "deploy" / "iam"
POLICIES = ["spark-writer-policy.json", "redshift-spectrum-role-policy.json", "platform-catalog-policy.json"]
PLACEHOLDERS = {
    "BUCKET_NAME": "movesmart-warehouse-123456789012",
    "WAREHOUSE_PREFIX": "warehouse",
    "ACCOUNT_ID": "123456789012",
    "REGION": "eu-west-1",
    "KMS_KEY_ID": "1234abcd-12ab-34cd-56ef-1234567890ab",
    "GLUE_DATABASE": "smartcity",
    "REDSHIFT_CLUSTER_ID": "movesmart",
    "REDSHIFT_WORKGROUP_ID": "0f4e2c1a-aaaa-bbbb-cccc-123456789abc",
    "REDSHIFT_DATABASE": "dev",
}


def statements(name: str) -> list[dict[str, Any]]:
    doc = json.loads((IAM / name).read_text())
    assert doc["Version"] == "2012-10-17"
    return doc["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def render(text: str) -> str:
    """What the README's sed command produces (longest placeholder first)."""
    for key in sorted(PLACEHOLDERS, key=len, reverse=True):
        text = text.replace(key, PLACEHOLDERS[key])
    return text


@pytest.mark.parametrize("name", POLICIES)
def test_no_wildcard_actions_and_s3_always_scoped(name: str) -> None:
    for st in statements(name):
        assert st["Effect"] == "Allow" and "NotAction" not in st and "NotResource" not in st
        actions = as_list(st["Action"])
        resources = as_list(st["Resource"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), st["Sid"]
        if any(a.startswith("s3:") for a in actions):
            assert "*" not in resources, f"{name} {st['Sid']}: S3 on every resource"
            for r in resources:
                assert r.startswith("arn:aws:s3:::BUCKET_NAME"), r
                assert r in ("arn:aws:s3:::BUCKET_NAME", "arn:aws:s3:::BUCKET_NAME/WAREHOUSE_PREFIX/*") or (
                    r == "arn:aws:s3:::BUCKET_NAME/WAREHOUSE_PREFIX" and actions == ["s3:GetObject"]
                ), r
        if "s3:ListBucket" in actions:
            prefixes = st["Condition"]["StringLike"]["s3:prefix"]
            assert prefixes == ["WAREHOUSE_PREFIX", "WAREHOUSE_PREFIX/*"]
        if "*" in resources:  # only Data API calls on one's own statements may use "*"
            assert all(
                a.startswith("redshift-data:") and a != "redshift-data:ExecuteStatement" for a in actions
            )
            assert (
                st["Condition"]["StringEquals"]["redshift-data:statement-owner-iam-userid"] == "${aws:userid}"
            )
        for r in resources:
            if r.startswith("arn:aws:glue"):
                assert r.endswith((":catalog", "database/GLUE_DATABASE", "table/GLUE_DATABASE/*")), r
            if r.startswith("arn:aws:kms"):
                assert r.endswith("key/KMS_KEY_ID") and "kms:ViaService" in st["Condition"]["StringEquals"]


def test_spark_writer_reads_and_writes_only_the_warehouse() -> None:
    by_sid = {st["Sid"]: st for st in statements("spark-writer-policy.json")}
    rw = by_sid["ReadWriteTablesAndCheckpoints"]
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(rw["Action"])
    assert rw["Resource"] == "arn:aws:s3:::BUCKET_NAME/WAREHOUSE_PREFIX/*"
    # S3A and pyarrow look at the warehouse root as an object first (HEAD WAREHOUSE_PREFIX): without
    # the grant S3 answers 403 instead of 404, and the reader fails instead of listing the prefix
    root = by_sid["ProbeTheWarehouseRootAsAnObject"]
    assert (root["Action"], root["Resource"]) == (
        ["s3:GetObject"],
        "arn:aws:s3:::BUCKET_NAME/WAREHOUSE_PREFIX",
    )
    kms = by_sid["OptionalSseKmsKeyDeleteWithoutSseKms"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"}
    assert not [a for st in by_sid.values() for a in as_list(st["Action"]) if a.startswith(("glue:", "iam:"))]


def test_redshift_role_is_read_only() -> None:
    # Iceberg tables in Glue have no Glue partitions: Redshift plans from the table's metadata files
    actions = {a for st in statements("redshift-spectrum-role-policy.json") for a in as_list(st["Action"])}
    assert actions == {
        "glue:GetDatabase",
        "glue:GetDatabases",
        "glue:GetTable",
        "glue:GetTables",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "kms:Decrypt",
    }


def test_platform_holds_exactly_the_iceberg_glue_catalog_actions() -> None:
    glue = {a for a in granted_actions("platform-catalog-policy.json") if a.startswith("glue:")}
    assert glue == {
        "glue:GetDatabase",
        "glue:CreateDatabase",  # pyiceberg's create_namespace_if_not_exists calls it every start
        "glue:GetTable",
        "glue:GetTables",
        "glue:CreateTable",
        "glue:UpdateTable",  # every Iceberg commit: the new metadata location, checked by version
    }
    everything = {a for name in POLICIES for a in granted_actions(name)}
    assert not [a for a in everything if "Partition" in a or "Crawler" in a], "no partition registration"
    # the platform's S3 access is the writer document's (one role holds both documents)
    assert not [a for a in granted_actions("platform-catalog-policy.json") if a.startswith("s3:")]


def granted_actions(name: str) -> set[str]:
    return {a for st in statements(name) for a in as_list(st["Action"])}


def recorded_requests(text: str) -> list[dict[str, Any]]:
    """The entries of a moto recording. Its server threads append concurrently, so two entries
    may share a line (one's newline written after the other's entry): read object after object."""
    decoder = json.JSONDecoder()
    entries, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return entries
        entry, position = decoder.raw_decode(text, position)
        entries.append(entry)


def actions_of_recorded_requests(entries: list[dict[str, Any]]) -> set[str]:
    """IAM actions of the requests moto recorded (MOTO_ENABLE_RECORDING): Glue by its target
    header, S3 by method, path and query (path-style URLs: /bucket or /bucket/key)."""
    actions: set[str] = set()
    for entry in entries:
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        target = headers.get("x-amz-target", "")
        if target.startswith("AWSGlue."):
            actions.add("glue:" + target.removeprefix("AWSGlue."))
            continue
        url = urlsplit(entry["url"])
        query = parse_qs(url.query, keep_blank_values=True)
        method = entry["method"]
        bucket, _, key = url.path.lstrip("/").partition("/")
        if not bucket:
            if method != "GET":
                raise AssertionError(f"unrecognised request {method} {entry['url']}")
            actions.add("s3:ListAllMyBuckets")
            continue
        if not key:
            if method == "PUT" and not query:
                actions.add("s3:CreateBucket")
            elif "location" in query:
                actions.add("s3:GetBucketLocation")
            elif "uploads" in query:
                actions.add("s3:ListBucketMultipartUploads")
            elif method == "POST" and "delete" in query:
                actions.add("s3:DeleteObject")  # DeleteObjects: authorised per key as DeleteObject
            elif method in ("GET", "HEAD"):
                actions.add("s3:ListBucket")
            else:
                raise AssertionError(f"unrecognised bucket request {method} {entry['url']}")
        elif method in ("GET", "HEAD"):
            actions.add("s3:ListMultipartUploadParts" if "uploadId" in query else "s3:GetObject")
        elif method in ("PUT", "POST"):  # single or multipart upload (a copy also reads its source)
            actions.add("s3:PutObject")
            if "x-amz-copy-source" in headers:
                actions.add("s3:GetObject")
        elif method == "DELETE":
            actions.add("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject")
        else:
            raise AssertionError(f"unrecognised object request {method} {entry['url']}")
    return actions


def test_recorded_requests_map_to_iam_actions() -> None:
    def line(method: str, url: str, **headers: str) -> str:
        return json.dumps({"method": method, "url": url, "headers": headers})

    recorded = [
        line("POST", "http://127.0.0.1:1/", **{"X-Amz-Target": "AWSGlue.UpdateTable"}),
        line("GET", "http://127.0.0.1:1/b?list-type=2&prefix=warehouse%2F"),
        line("HEAD", "http://127.0.0.1:1/b/warehouse/x.parquet"),
        line("POST", "http://127.0.0.1:1/b/warehouse/x.parquet?uploads"),
        line("DELETE", "http://127.0.0.1:1/b/warehouse/x.parquet?uploadId=1"),
        line("POST", "http://127.0.0.1:1/b?delete"),
        line("GET", "http://127.0.0.1:1/"),
    ]
    # two entries on one line, as concurrent server threads leave them
    text = recorded[0] + recorded[1] + "\n\n" + "\n".join(recorded[2:]) + "\n"
    assert len(recorded_requests(text)) == len(recorded)
    assert actions_of_recorded_requests(recorded_requests(text)) == {
        "glue:UpdateTable",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:ListAllMyBuckets",
    }


def test_trust_policy_lets_only_redshift_of_this_account_assume_the_role() -> None:
    (st,) = statements("redshift-spectrum-trust-policy.json")
    assert st["Action"] == "sts:AssumeRole" and st["Effect"] == "Allow"
    assert set(st["Principal"]) == {"Service"}
    assert set(st["Principal"]["Service"]) == {"redshift.amazonaws.com", "redshift-serverless.amazonaws.com"}
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == "ACCOUNT_ID"


@pytest.mark.parametrize("name", [*POLICIES, "redshift-spectrum-trust-policy.json"])
def test_rendered_policies_leave_no_placeholder(name: str) -> None:
    rendered = render((IAM / name).read_text())
    json.loads(rendered)
    leftovers = re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\bREGION\b", rendered)
    assert not leftovers, leftovers
    arns = re.findall(r'"(arn:aws[^"]*)"', rendered)
    assert arns or name.endswith("trust-policy.json")
    assert all(re.match(r"^arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:", a) for a in arns), arns


def test_readme_documents_every_policy_file() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for path in sorted(IAM.glob("*.json")):
        assert f"deploy/iam/{path.name}" in readme, path.name
    for placeholder in PLACEHOLDERS:
        assert placeholder in readme, placeholder


def test_every_policy_file_is_tested() -> None:
    assert {p.name for p in Path(IAM).glob("*.json")} == {*POLICIES, "redshift-spectrum-trust-policy.json"}
