"""The distributed deployment, checked without a Docker engine.

No engine runs here or in CI, so `docker-compose.yml` is validated the way Compose itself
starts: variables are interpolated from the env file (with Compose's `${VAR:-default}`,
`${VAR:?error}` and `$$` rules), and the result is validated against the Compose
Specification JSON schema (vendored, see deploy/compose-spec.NOTICE.md). On top of the
schema: semantic rules of this project — pinned images whose versions equal the Python and
JVM pins, healthchecks, loopback-only ports, one network, configuration from env files and
secrets only by interpolation — and the Dagster production instance validated by Dagster's
own config schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from movesmart_dagster.settings import REPO_ROOT, load_settings
from movesmart_dagster.spark_session import spark_conf
from movesmart_dagster.tables.catalog import sqlite_path
from movesmart_dagster_tests.secret_scan import find_secrets

DEPLOY = REPO_ROOT / "deploy"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|WEBHOOK", re.IGNORECASE)
ONE_SHOT = "no"  # restart policy of one-shot jobs (no healthcheck; waited on by completion)


# --- helpers -----------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


class MissingVariable(ValueError):
    pass


_VAR = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_]\w*)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation of every string in the file (the subset this project uses)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        current = env.get(name)
        unset_or_empty = not current if op and op.startswith(":") else current is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(current)
        if op in (":?", "?"):
            if unset_or_empty:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _VAR.sub(sub, value)


def variables(value: Any) -> set[tuple[str, str | None]]:
    """(name, operator) of every interpolated variable in the file."""
    if isinstance(value, dict):
        return set().union(*(variables(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables(v) for v in value)) if value else set()
    if not isinstance(value, str):
        return set()
    return {(m.group(1) or m.group(4), m.group(2)) for m in _VAR.finditer(value) if m.group(0) != "$$"}


def filled_env() -> dict[str, str]:
    """deploy/.env.example with every empty secret filled in (what init-env.sh produces)."""
    env = read_env_file(DEPLOY / ".env.example")
    return {k: (v or f"filled-{k.lower()}") for k, v in env.items()}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return interpolate(raw, filled_env())


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((DEPLOY / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def pinned(requirement_name: str) -> str:
    for dep in pyproject()["project"]["dependencies"]:
        name, sep, version = dep.partition("==")
        if sep and re.sub(r"\[.*\]", "", name).strip().lower() == requirement_name:
            return version.strip()
    raise AssertionError(f"{requirement_name} is not pinned in pyproject.toml")


def locked(name: str) -> str:
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        key, sep, version = line.partition("==")
        if sep and key.strip().lower().replace("_", "-") == name:
            return version.strip()
    raise AssertionError(f"{name} missing from requirements.lock")


def pom_property(name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    value = ET.parse(REPO_ROOT / "jvm" / "pom.xml").getroot().find(f"m:properties/m:{name}", ns)
    assert value is not None and value.text, name
    return value.text.strip()


def image(compose: dict[str, Any], service: str) -> tuple[str, str]:
    repo, _, tag = compose["services"][service]["image"].rpartition(":")
    return repo, tag


# --- schema --------------------------------------------------------------------------------


def test_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256((DEPLOY / "compose-spec.json").read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_is_valid_before_and_after_interpolation(
    raw: dict[str, Any], compose: dict[str, Any], validator: jsonschema.protocols.Validator
) -> None:
    for doc in (raw, compose):
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, "\n".join(errors)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["kafka"].update(imagee="apache/kafka:4.1.1"),
        lambda d: d["services"]["kafka"]["healthcheck"].update(interval=10),
        lambda d: d["services"]["postgres"].update(depends_on={"kafka": {"condition": "started"}}),
        lambda d: d["services"]["minio"].update(ports={"9000": 9000}),
        lambda d: d.update(nets={}),
    ],
)
def test_the_schema_rejects_broken_files(
    compose: dict[str, Any], validator: jsonschema.protocols.Validator, mutate: Any
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    assert list(validator.iter_errors(broken))


def test_compose_refuses_to_start_without_the_secrets(raw: dict[str, Any]) -> None:
    example = read_env_file(DEPLOY / ".env.example")
    with pytest.raises(MissingVariable, match="init-env.sh"):
        interpolate(raw, example)  # the example's secrets are empty on purpose
    required = {name for name, op in variables(raw) if op in (":?", "?")}
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MOVESMART_S3_SECRET_ACCESS_KEY"} <= required
    assert all(
        example.get(name, "") == ""
        for name in required
        if SECRET_NAME.search(name) and not name.endswith("_KEY_ID")
    )


# --- semantic rules ------------------------------------------------------------------------


def test_every_image_is_pinned_to_a_version(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        ref = service.get("image", "")
        repo, _, tag = ref.rpartition(":")
        assert repo and tag, f"{name}: image {ref!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {ref!r} is not a version tag"
        assert "@" not in repo, name
    built = [s for s in compose["services"].values() if "build" in s]
    assert built and {s["image"] for s in built} == {f"movesmart/dagster:{pyproject()['project']['version']}"}


def test_image_versions_match_the_python_and_jvm_pins(compose: dict[str, Any]) -> None:
    # the Spark master and workers run the image the Dockerfile builds: the pyspark of the lock,
    # so the cluster's Spark, Java and Python are the driver's (no Spark image of its own to drift)
    ours = f"movesmart/dagster:{pyproject()['project']['version']}"
    for service in ("spark-master", "spark-worker-1", "spark-worker-2"):
        spec = compose["services"][service]
        assert spec["image"] == ours and spec["build"]["dockerfile"] == "Dockerfile", service
        assert spec["command"][0] == "spark-class", service  # pyspark's own launcher, on the PATH
    assert pinned("pyspark") == locked("pyspark") == pom_property("spark.version")

    kafka_repo, kafka_tag = image(compose, "kafka")
    assert (kafka_repo, kafka_tag) == ("apache/kafka", pom_property("kafka.version"))

    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert len(froms) == 2
    maven, python = froms
    assert re.fullmatch(r"maven:\d+\.\d+\.\d+-eclipse-temurin-(\d+)", maven)
    jdk = re.search(r"temurin-(\d+)", maven).group(1)  # type: ignore[union-attr]
    assert f"openjdk-{jdk}-jre-headless" in dockerfile, "the jars are built for the JRE that runs them"
    py = re.fullmatch(r"python:(\d+)\.(\d+)\.(\d+)-slim-bookworm", python)
    assert py, python
    requires = pyproject()["project"]["requires-python"]
    assert requires == f">={py.group(1)}.{py.group(2)}"
    assert pyproject()["tool"]["ruff"]["target-version"] == f"py{py.group(1)}{py.group(2)}"

    # the image installs exactly the lock, whose Dagster pins are pyproject's
    assert re.search(r"pip install -c requirements\.lock -e \.", dockerfile)
    for name in ("dagster", "dagster-webserver", "dagster-graphql", "dagster-pipes"):
        assert locked(name) == pinned(name)
    for name in ("dagster-aws", "dagster-pyspark", "dagster-spark", "dagster-postgres"):
        assert locked(name) == pinned(name) == pinned("dagster-aws")  # one library release line
    assert locked("pyspark") == pinned("pyspark")


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if service.get("restart") == ONE_SHOT:
            waiters = [
                deps[name]["condition"]
                for deps in (s.get("depends_on", {}) for s in services.values())
                if isinstance(deps, dict) and name in deps
            ]
            assert waiters and set(waiters) == {"service_completed_successfully"}, name
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert {"interval", "timeout", "retries"} <= check.keys(), name


def test_depends_on_names_real_services_with_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        deps = service.get("depends_on", {})
        for dep, spec in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"


def test_published_ports_are_bound_to_loopback(compose: dict[str, Any]) -> None:
    published = []
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host" and not service.get("privileged"), name
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"
            published.append(port)
    assert any(p.endswith(":3000") for p in published)  # the Dagster UI, on loopback only
    webserver = compose["services"]["dagster-webserver"]
    assert webserver["ports"] == ["127.0.0.1:3000:3000"]
    assert webserver["command"][:3] == ["dagster-webserver", "-h", "0.0.0.0"]  # inside the container


def test_one_network(compose: dict[str, Any]) -> None:
    assert list(compose["networks"]) == ["movesmart"]
    for name, service in compose["services"].items():
        assert service.get("networks") == ["movesmart"], name


def test_configuration_comes_from_env_files_and_secrets_only_by_interpolation(
    raw: dict[str, Any], compose: dict[str, Any]
) -> None:
    committed = set(
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "deploy"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    movesmart_services = [  # the platform's own services (the Spark ones share the image, not the settings)
        n
        for n, s in compose["services"].items()
        if s["image"].startswith("movesmart/") and s["command"][0] != "spark-class"
    ]
    assert {"dagster-code", "dagster-webserver", "dagster-daemon"} <= set(movesmart_services)
    for name, service in compose["services"].items():
        for env_file in service.get("env_file", []):
            assert env_file in committed and not env_file.endswith("/.env"), f"{name}: {env_file}"
            text = (REPO_ROOT / env_file).read_text()
            assert not find_secrets(text, config_like=True), env_file
            assert not [
                k for k, v in read_env_file(REPO_ROOT / env_file).items() if SECRET_NAME.search(k) and v
            ]
        for key, value in raw["services"][name].get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert isinstance(value, str) and value.startswith("${"), f"{name}: {key} is a literal"
        if name in movesmart_services:
            assert service["env_file"] == ["deploy/movesmart.env"], name
    declared = set(read_env_file(DEPLOY / ".env.example"))
    for name, _ in variables(raw):
        assert name in declared, f"${{{name}}} is not declared in deploy/.env.example"
    assert "deploy/.env" not in committed


def test_the_streaming_job_runs_on_the_spark_cluster(compose: dict[str, Any]) -> None:
    env = read_env_file(DEPLOY / "movesmart.env")
    settings = load_settings(env)  # the containers' settings are valid settings
    assert settings.spark_master == "spark://spark-master:7077"
    master = compose["services"]["spark-master"]["command"]
    assert (
        master[master.index("--port") + 1] == "7077" and master[master.index("--host") + 1] == "spark-master"
    )
    for worker in ("spark-worker-1", "spark-worker-2"):
        assert "spark://spark-master:7077" in compose["services"][worker]["command"]
    conf = spark_conf(settings)
    assert conf["spark.master"] == "spark://spark-master:7077"
    assert "spark.driver.host" not in conf  # executors must reach the driver in dagster-code
    # the warehouse is the bucket minio-init creates, through the compose network
    assert settings.warehouse == f"s3a://{settings.s3_bucket}/warehouse"
    assert settings.s3_endpoint == "http://minio:9000" and "minio" in compose["services"]
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    # the Iceberg catalog: a SQLite file on the volume of the one container that opens it
    assert settings.catalog == "local"
    code_volumes = compose["services"]["dagster-code"]["volumes"]
    assert "movesmart-home:/var/lib/movesmart" in code_volumes
    assert sqlite_path(settings).is_relative_to("/var/lib/movesmart")
    assert conf["spark.sql.catalog.movesmart.uri"] == f"jdbc:sqlite:{sqlite_path(settings)}"
    for name in (
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
    ):  # executors write files, not the catalog
        assert "volumes" not in compose["services"][name], name
    kafka_env = read_env_file(DEPLOY / "kafka.env")
    assert "INTERNAL://:9092" in kafka_env["KAFKA_LISTENERS"]
    assert (
        "INTERNAL://kafka:9092" in compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_code_location_and_workspace_agree(compose: dict[str, Any]) -> None:
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    code = compose["services"]["dagster-code"]
    command = code["command"]
    assert grpc["host"] == code["hostname"] == "dagster-code"
    assert str(grpc["port"]) == command[command.index("-p") + 1]
    assert grpc["location_name"] == command[command.index("--location-name") + 1]
    assert command[command.index("-m") + 1] == pyproject()["tool"]["dagster"]["module_name"]
    for service in ("dagster-webserver", "dagster-daemon"):
        assert "-w /opt/dagster/workspace.yaml" in " ".join(compose["services"][service]["command"])
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY deploy/workspace.yaml /opt/dagster/workspace.yaml" in dockerfile
    assert "COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile


def test_production_dagster_instance_config(tmp_path: Path) -> None:
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres import DagsterPostgresStorage

    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema validation
    postgres = config["storage"]["postgres"]
    result = validate_config(DagsterPostgresStorage.config_type(), postgres)
    assert result.success, result.errors
    db = postgres["postgres_db"]
    assert all(isinstance(v, dict) and set(v) == {"env"} for v in db.values())  # nothing literal
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # at most 4 runs; one run of a pool at a time (the table-maintenance assets share one)
    assert config["concurrency"] == {
        "runs": {"max_concurrent_runs": 4},
        "pools": {"default_limit": 1, "granularity": "run"},
    }
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    storage_env = yaml.safe_load(COMPOSE_FILE.read_text())["x-dagster-storage-env"]
    assert {v["env"] for v in db.values()} == set(storage_env)
    # local development keeps the default SQLite home: nothing at the top level configures Postgres
    assert not (REPO_ROOT / "dagster.yaml").exists()


def test_the_daemon_registers_the_maintenance_pool_before_it_starts(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Dagster gives a pool its default limit only after its queue saw one of its runs: the
    deployment's daemon registers the maintenance pool first, here run for real on an instance
    with the production config's concurrency block (SQLite storage: no Postgres here)."""
    command = compose["services"]["dagster-daemon"]["command"]
    assert command[:2] == ["sh", "-c"]
    register, _, daemon = command[2].partition(" && ")
    assert register == "python -m movesmart_dagster.instance_pools"
    assert daemon == "exec dagster-daemon run -w /opt/dagster/workspace.yaml"

    production = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    said = {}
    for name, config in {
        "production": {k: production[k] for k in ("run_coordinator", "concurrency")},
        "no pools": {"run_coordinator": production["run_coordinator"]},
    }.items():
        home = tmp_path / name.replace(" ", "_")
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        run = subprocess.run(
            [sys.executable, "-m", "movesmart_dagster.instance_pools"],
            env={**os.environ, "DAGSTER_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        said[name] = run.stdout.strip()
    assert said == {
        "production": "pool iceberg_table_maintenance: 1 run(s) at a time",
        "no pools": "pool iceberg_table_maintenance: no default limit in the instance",
    }


def test_dockerfile_bakes_the_jars_and_runs_unprivileged() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    # the Spark modules of jvm/ — the same poms `make setup` packages into .jars/spark
    assert (
        "COPY jvm/ jvm/" in dockerfile
        and "mvn -q -B -pl spark-connectors,spark-contract -am package" in dockerfile
    )
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    modules = ET.parse(REPO_ROOT / "jvm" / "pom.xml").getroot().findall("m:modules/m:module", ns)
    assert {"spark-connectors", "spark-contract"} <= {m.text for m in modules}
    assert "COPY --from=jars /build/.jars/spark .jars/spark" in dockerfile
    assert not re.search(r"(curl|wget)\s", dockerfile), "nothing is downloaded outside package managers"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".jars", ".env", "deploy/.env"} <= set(ignored)


def test_the_spark_jars_match_pyspark_and_carry_iceberg() -> None:
    """What spark-connectors resolves (here by `make setup`, in the image by the Dockerfile's
    stage 1): Iceberg's runtime for pyspark's Spark minor and Scala, the AWS bundle (Glue catalog)
    at the same Iceberg version, the SQLite driver of the embedded catalog, the Kafka source at
    pyspark's version, and hadoop-aws at the Hadoop pyspark bundles."""
    import pyspark

    spark = pom_property("spark.version")
    minor = ".".join(spark.split(".")[:2])
    scala = pom_property("scala.binary.version")
    iceberg = pom_property("iceberg.version")
    jars = {p.name for p in load_settings({}).spark_jars_dir.glob("*.jar")}
    assert {
        f"iceberg-spark-runtime-{minor}_{scala}-{iceberg}.jar",
        f"iceberg-aws-bundle-{iceberg}.jar",
        f"sqlite-jdbc-{pom_property('sqlite.jdbc.version')}.jar",
        f"spark-sql-kafka-0-10_{scala}-{spark}.jar",
        f"hadoop-aws-{pom_property('hadoop.version')}.jar",
        "movesmart-spark-contract.jar",
    } <= jars, sorted(jars)
    assert not [j for j in jars if j.startswith(("hadoop-client", "spark-core", "scala-library"))]
    bundled = {p.name for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    assert f"hadoop-client-api-{pom_property('hadoop.version')}.jar" in bundled
    assert f"spark-core_{scala}-{spark}.jar" in bundled and pyspark.__version__ == spark
    conf = spark_conf(load_settings({}))
    assert {Path(j).name for j in conf["spark.jars"].split(",")} == jars  # what the driver ships


def test_init_env_creates_private_random_secrets_once(tmp_path: Path, raw: dict[str, Any]) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    for name in (".env.example", "init-env.sh"):
        (deploy / name).write_bytes((DEPLOY / name).read_bytes())
    run = ["sh", str(deploy / "init-env.sh")]
    subprocess.run(run, check=True, capture_output=True, env={**os.environ})
    env_file = deploy / ".env"
    env = read_env_file(env_file)
    secrets = [env[k] for k in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MOVESMART_S3_SECRET_ACCESS_KEY")]
    assert all(re.fullmatch(r"[0-9a-f]{48}", s) for s in secrets) and len(set(secrets)) == 3
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    interpolate(raw, env)  # every required variable is now set
    before = env_file.read_text()
    again = subprocess.run(run, check=True, capture_output=True, text=True)
    assert "not touching it" in again.stdout and env_file.read_text() == before


def test_minio_init_is_least_privilege() -> None:
    policy = json.loads((DEPLOY / "minio" / "platform-policy.json").read_text())
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "s3:*" not in statement["Action"]
        for resource in statement["Resource"]:
            assert resource.startswith("arn:aws:s3:::__BUCKET__"), resource
    script = (DEPLOY / "minio" / "init.sh").read_text()
    assert subprocess.run(["sh", "-n", str(DEPLOY / "minio" / "init.sh")]).returncode == 0
    assert "mc admin user add" in script and "mc admin policy attach" in script
