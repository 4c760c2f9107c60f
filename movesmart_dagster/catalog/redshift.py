"""The Redshift external schema `dev_smartcity`, rendered from `sql/` and sent via the Data API.

Why templates in `sql/`: a person reads and reviews SQL as SQL; the code only fills in four
placeholders. Each value is validated first (identifiers, IAM role ARN, region) because the
statement is built as text — a value that does not match its pattern is refused, never
quoted or escaped. Why the Data API: it needs no driver, no network path to the cluster and
no database password (IAM authorises the call), and works for provisioned clusters and
Serverless workgroups alike. The executor takes the boto3 `redshift-data` client so that
tests can pass a recording client: Redshift itself cannot run on a development machine.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movesmart_dagster.settings import REPO_ROOT, Settings

SQL_DIR = REPO_ROOT / "sql"
EXTERNAL_SCHEMA_SQL = "create_external_schema.sql"
EXAMPLES_SQL = "examples.sql"

# Unquoted Redshift identifiers; Glue database names are a subset of these.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,126}$")
_IAM_ROLE = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@/\-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class RedshiftError(RuntimeError):
    """A statement could not be rendered or failed in Redshift; the message says which."""


def validate_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise RedshiftError(f"invalid {what} {value!r}: expected a lowercase identifier (letters, digits, _)")
    return value


def _validate(name: str, value: str) -> str:
    if name in ("schema", "database"):
        return validate_identifier(value, name)
    if name == "iam_role":
        if not _IAM_ROLE.match(value):
            raise RedshiftError(f"invalid IAM role {value!r}: expected arn:aws:iam::<account>:role/<name>")
        return value
    if name == "region":
        if not _REGION.match(value):
            raise RedshiftError(f"invalid region {value!r}: expected e.g. us-east-1")
        return value
    raise RedshiftError(f"no validation rule for placeholder {{{name}}}")


def split_statements(sql: str) -> list[str]:
    """Statements of a SQL file: `--` comment lines dropped, split on a trailing `;`."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--"):
            continue
        current.append(line.rstrip())
        if stripped.endswith(";"):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current) + ";")
    return statements


def render_sql(name: str, sql_dir: Path = SQL_DIR, **values: str) -> list[str]:
    """Render `sql/<name>` with validated values; every placeholder must be given."""
    text = (sql_dir / name).read_text(encoding="utf-8")
    wanted = set(_PLACEHOLDER.findall("\n".join(split_statements(text))))
    missing = wanted - values.keys()
    if missing:
        raise RedshiftError(f"{name}: no value for {', '.join(sorted(missing))}")
    safe = {k: _validate(k, v) for k, v in values.items() if k in wanted}
    return [_PLACEHOLDER.sub(lambda m: safe[m.group(1)], s) for s in split_statements(text)]


def external_schema_statements(settings: Settings, sql_dir: Path = SQL_DIR) -> list[str]:
    """The statements that create `MOVESMART_REDSHIFT_SCHEMA` over the Glue database."""
    if not settings.redshift_iam_role:
        raise RedshiftError(
            "MOVESMART_REDSHIFT_IAM_ROLE is not set: the role ARN Redshift uses to read Glue and S3"
        )
    return render_sql(
        EXTERNAL_SCHEMA_SQL,
        sql_dir,
        schema=settings.redshift_schema,
        database=settings.glue_database,
        iam_role=settings.redshift_iam_role,
        region=settings.aws_region,
    )


def example_queries(sql_dir: Path = SQL_DIR) -> list[str]:
    """The seed's query and the insight queries of `sql/examples.sql`, in file order."""
    return split_statements((sql_dir / EXAMPLES_SQL).read_text(encoding="utf-8"))


# --- the Data API executor ----------------------------------------------------------------


@dataclass
class RedshiftDataExecutor:
    """Runs statements one at a time through the Redshift Data API and waits for each.

    Exactly one of `cluster_id` (provisioned; with `db_user`, or IAM identity) or
    `workgroup` (Serverless) is required.
    """

    client: Any
    database: str
    cluster_id: str | None = None
    workgroup: str | None = None
    db_user: str | None = None
    poll_interval_s: float = 1.0
    timeout_s: float = 300.0
    statement_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if bool(self.cluster_id) == bool(self.workgroup):
            raise RedshiftError(
                "set exactly one of MOVESMART_REDSHIFT_CLUSTER_ID or MOVESMART_REDSHIFT_WORKGROUP"
            )

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> RedshiftDataExecutor:
        if client is None:
            import boto3

            client = boto3.client("redshift-data", region_name=settings.aws_region)
        return cls(
            client=client,
            database=settings.redshift_database,
            cluster_id=settings.redshift_cluster_id,
            workgroup=settings.redshift_workgroup,
            db_user=settings.redshift_db_user,
        )

    def _target(self) -> dict[str, str]:
        target = {"Database": self.database}
        if self.cluster_id:
            target["ClusterIdentifier"] = self.cluster_id
            if self.db_user:
                target["DbUser"] = self.db_user
        else:
            target["WorkgroupName"] = str(self.workgroup)
        return target

    def execute(self, sql: str) -> dict[str, Any]:
        """Send one statement and wait until it finishes; returns describe_statement's answer."""
        response = self.client.execute_statement(Sql=sql, StatementName="movesmart", **self._target())
        statement_id = response["Id"]
        self.statement_ids.append(statement_id)
        deadline = time.monotonic() + self.timeout_s
        polls = 0
        while True:
            described = self.client.describe_statement(Id=statement_id)
            status = described["Status"]
            if status == "FINISHED":
                return described
            if status in ("FAILED", "ABORTED"):
                first_line = sql.strip().splitlines()[0]
                raise RedshiftError(
                    f"Redshift statement {statement_id} {status}: {described.get('Error', '')} [{first_line}]"
                )
            if time.monotonic() > deadline:
                self.client.cancel_statement(Id=statement_id)
                raise RedshiftError(
                    f"Redshift statement {statement_id} still {status} after {self.timeout_s}s"
                )
            # short statements (DDL) finish in well under a second: poll fast first, then back off
            time.sleep(min(self.poll_interval_s, 0.05 * 2**polls))
            polls += 1

    def execute_all(self, statements: list[str]) -> list[dict[str, Any]]:
        return [self.execute(s) for s in statements]


def create_external_schema(settings: Settings, client: Any | None = None) -> list[str]:
    """Create the external schema; returns the statements sent (for asset metadata)."""
    statements = external_schema_statements(settings)
    RedshiftDataExecutor.from_settings(settings, client).execute_all(statements)
    return statements
