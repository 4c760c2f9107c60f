"""The IAM policy documents in deploy/iam/ parse and are least-privilege.

What "scoped" means here: every S3 action names the warehouse bucket or its prefix (never
`*`, never `s3:*`), listing is limited to the warehouse prefix by condition, Glue access
is limited to the one database, the Redshift role is read-only and trusted by Redshift of
this account only, and no statement allows `*` actions. The placeholders (BUCKET_NAME,
WAREHOUSE_PREFIX, ...) are the ones the README tells the reader to replace; a rendered
copy must leave none behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
                assert r in ("arn:aws:s3:::BUCKET_NAME", "arn:aws:s3:::BUCKET_NAME/WAREHOUSE_PREFIX/*"), r
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
    kms = by_sid["OptionalSseKmsKeyDeleteWithoutSseKms"]
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"}
    assert not [a for st in by_sid.values() for a in as_list(st["Action"]) if a.startswith(("glue:", "iam:"))]


def test_redshift_role_is_read_only() -> None:
    actions = {a for st in statements("redshift-spectrum-role-policy.json") for a in as_list(st["Action"])}
    assert actions == {
        "glue:GetDatabase",
        "glue:GetDatabases",
        "glue:GetTable",
        "glue:GetTables",
        "glue:GetPartition",
        "glue:GetPartitions",
        "glue:BatchGetPartition",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "kms:Decrypt",
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
