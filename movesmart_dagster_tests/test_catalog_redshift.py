"""The Redshift external schema: rendered statements, validation, and the Data API executor.

Redshift cannot run on this machine (no emulator serves the Redshift SQL dialect; moto's
Data API never finishes a statement). So the executor is tested with a RECORDED FAKE
client — `RecordingDataApi` below (a fake because Redshift cannot run here): it records each request,
checks its parameters against botocore's real `redshift-data` service model (so a request
the real API would refuse fails here too), and answers with scripted statuses.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from movesmart_dagster.catalog.redshift import (
    SQL_DIR,
    RedshiftDataExecutor,
    RedshiftError,
    create_external_schema,
    example_queries,
    external_schema_statements,
    render_sql,
)
from movesmart_dagster.settings import SettingsError, load_settings

ROLE = "arn:aws:iam::123456789012:role/movesmart-redshift-spectrum"
_MODEL = botocore.session.get_session().get_service_model("redshift-data")


class RecordingDataApi:
    """RECORDED FAKE of boto3's `redshift-data` client (Redshift cannot run here).

    Records every call; validates parameters against botocore's service model; each
    statement walks through `statuses` (default SUBMITTED -> STARTED -> FINISHED).
    """

    def __init__(self, statuses: tuple[str, ...] = ("SUBMITTED", "STARTED", "FINISHED"), error: str = ""):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._statuses = statuses
        self._error = error
        self._pending: dict[str, deque[str]] = {}

    def _record(self, operation: str, params: dict[str, Any]) -> None:
        shape = _MODEL.operation_model(operation).input_shape
        validate_parameters(params, shape)  # raises ParamValidationError like the real client
        self.calls.append((operation, params))

    def execute_statement(self, **params: Any) -> dict[str, Any]:
        self._record("ExecuteStatement", params)
        statement_id = f"stmt-{len(self._pending) + 1}"
        self._pending[statement_id] = deque(self._statuses)
        return {"Id": statement_id, "Database": params["Database"]}

    def describe_statement(self, **params: Any) -> dict[str, Any]:
        self._record("DescribeStatement", params)
        queue = self._pending[params["Id"]]
        status = queue.popleft() if len(queue) > 1 else queue[0]
        answer = {"Id": params["Id"], "Status": status}
        if status == "FAILED":
            answer["Error"] = self._error
        return answer

    def cancel_statement(self, **params: Any) -> dict[str, Any]:
        self._record("CancelStatement", params)
        return {"Status": True}

    def sent(self) -> list[str]:
        return [p["Sql"] for op, p in self.calls if op == "ExecuteStatement"]


def settings(**env: str):  # type: ignore[no-untyped-def]
    base = {"MOVESMART_REDSHIFT_IAM_ROLE": ROLE, "MOVESMART_REDSHIFT_WORKGROUP": "movesmart"}
    return load_settings({**base, **env})


def test_external_schema_statement_as_rendered() -> None:
    assert external_schema_statements(settings()) == [
        "CREATE EXTERNAL SCHEMA IF NOT EXISTS dev_smartcity\n"
        "FROM DATA CATALOG\n"
        "DATABASE 'smartcity'\n"
        f"IAM_ROLE '{ROLE}'\n"
        "REGION 'us-east-1';"
    ]
    custom = external_schema_statements(
        settings(
            MOVESMART_REDSHIFT_SCHEMA="prod_city", MOVESMART_GLUE_DATABASE="city_db", AWS_REGION="eu-west-1"
        )
    )
    assert "IF NOT EXISTS prod_city\n" in custom[0]
    assert "DATABASE 'city_db'" in custom[0] and "REGION 'eu-west-1'" in custom[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOVESMART_REDSHIFT_SCHEMA", "dev_smartcity; DROP SCHEMA public"),
        ("MOVESMART_REDSHIFT_SCHEMA", "Dev-SmartCity"),
        ("MOVESMART_GLUE_DATABASE", "smartcity' IAM_ROLE 'arn:aws:iam::111111111111:role/x"),
        ("AWS_REGION", "us-east-1'; --"),
    ],
)
def test_values_that_could_inject_sql_are_refused(variable: str, value: str) -> None:
    with pytest.raises(RedshiftError, match="invalid"):
        external_schema_statements(settings(**{variable: value}))


def test_role_is_validated_and_required() -> None:
    with pytest.raises(SettingsError, match="MOVESMART_REDSHIFT_IAM_ROLE"):
        settings(MOVESMART_REDSHIFT_IAM_ROLE="arn:aws:iam::1234:role/x' --")
    with pytest.raises(RedshiftError, match="MOVESMART_REDSHIFT_IAM_ROLE is not set"):
        external_schema_statements(load_settings({}))
    with pytest.raises(RedshiftError, match="invalid IAM role"):
        render_sql(
            "create_external_schema.sql",
            schema="s",
            database="d",
            iam_role="arn:aws:iam::123456789012:role/x'",
            region="us-east-1",
        )
    with pytest.raises(RedshiftError, match="no value for region"):
        render_sql("create_external_schema.sql", schema="s", database="d", iam_role=ROLE)


def test_create_external_schema_sends_exactly_the_rendered_statement() -> None:
    fake = RecordingDataApi()  # recorded fake: see the module docstring
    sent = create_external_schema(settings(), client=fake)
    assert fake.sent() == sent == external_schema_statements(settings())
    op, params = fake.calls[0]
    assert op == "ExecuteStatement"
    assert params == {
        "Sql": sent[0],
        "StatementName": "movesmart",
        "Database": "dev",
        "WorkgroupName": "movesmart",
    }
    # polled until FINISHED
    assert [op for op, _ in fake.calls[1:]] == ["DescribeStatement"] * 3


def test_provisioned_cluster_target_and_failure() -> None:
    fake = RecordingDataApi(statuses=("STARTED", "FAILED"), error="permission denied for schema")
    executor = RedshiftDataExecutor.from_settings(
        load_settings(
            {
                "MOVESMART_REDSHIFT_CLUSTER_ID": "movesmart-cluster",
                "MOVESMART_REDSHIFT_DB_USER": "awsuser",
                "MOVESMART_REDSHIFT_DATABASE": "analytics",
            }
        ),
        client=fake,
    )
    executor.poll_interval_s = 0.01
    with pytest.raises(RedshiftError, match="FAILED: permission denied for schema"):
        executor.execute("select 1;")
    assert fake.calls[0][1] == {
        "Sql": "select 1;",
        "StatementName": "movesmart",
        "Database": "analytics",
        "ClusterIdentifier": "movesmart-cluster",
        "DbUser": "awsuser",
    }


def test_a_statement_that_never_finishes_is_cancelled() -> None:
    fake = RecordingDataApi(statuses=("STARTED",))
    executor = RedshiftDataExecutor(
        fake, database="dev", workgroup="movesmart", poll_interval_s=0.01, timeout_s=0.05
    )
    with pytest.raises(RedshiftError, match="still STARTED"):
        executor.execute("select 1;")
    assert fake.calls[-1] == ("CancelStatement", {"Id": "stmt-1"})


def test_exactly_one_target_is_required() -> None:
    with pytest.raises(RedshiftError, match="exactly one of"):
        RedshiftDataExecutor(RecordingDataApi(), database="dev")
    with pytest.raises(RedshiftError, match="exactly one of"):
        RedshiftDataExecutor(RecordingDataApi(), database="dev", cluster_id="c", workgroup="w")


def test_examples_start_with_the_seed_query() -> None:
    queries = example_queries()
    assert queries[0] == "select * from dev_smartcity.gps_data;"
    assert len(queries) >= 5
    assert all(q.rstrip().endswith(";") and "dev_smartcity." in q for q in queries)
    assert (SQL_DIR / "create_external_schema.sql").is_file()
