"""Security: S3 server-side encryption, Kafka SSL/SASL passthrough, secrets kept out of sight.

What is checked, and against what:
- SSE: the settings are validated and reach `spark_conf`; then a real Spark job writes
  through S3A to moto's HTTP endpoint and every object it wrote carries the encryption.
- Kafka: with real PEM files (generated here), the configuration of each client — the
  simulator's producer, the Dagster Kafka resource's AdminClient, Spark's Kafka source —
  carries the protocol, mechanism, credentials and certificates; librdkafka itself loads
  the generated CA and key pair when the clients are constructed.
- The SASL password never appears in repr/str/dumps of the settings or in error messages.
- No key material in the repository (`git ls-files`). The logs of the whole test run are
  scanned by the session-finish hook at the end of conftest.py (same patterns, below).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import boto3
import pytest

from movesmart_dagster.settings import REPO_ROOT, Settings, SettingsError, load_settings
from movesmart_dagster.spark_session import spark_conf
from movesmart_dagster_tests.secret_scan import CONFIG_SUFFIXES, add_canary, find_secrets, scan_logs


def test_scanner_finds_what_it_looks_for() -> None:
    """The scanner is not vacuous (samples are assembled at run time, never stored)."""
    fake_key_id = "AKIA" + "Q" * 16
    fake_secret = "A" * 20 + "/" + "b" * 19
    block = "-----BEGIN " + "PRIVATE KEY-----"
    assert find_secrets(f"id={fake_key_id}", config_like=False)
    assert find_secrets(f"aws_secret_access_key = {fake_secret}", config_like=False)
    assert find_secrets(block, config_like=False)
    assert find_secrets("POSTGRES_PASSWORD=hunter2hunter2", config_like=True)
    assert find_secrets("password: s3cr3t-value", config_like=True)
    for fine in (
        "POSTGRES_PASSWORD=",
        "DAGSTER_PG_PASSWORD: ${POSTGRES_PASSWORD:?run deploy/init-env.sh to create deploy/.env}",
        "password:\n        env: DAGSTER_PG_PASSWORD",
        "KAFKA_SASL_PASSWORD=<from your secret store>",
    ):
        assert not find_secrets(fine, config_like=True), fine


def test_log_scan_finds_leaks_and_passes_clean_logs(tmp_path: Path) -> None:
    canary = add_canary("canary-" + uuid.uuid4().hex)
    clean = tmp_path / "clean" / "kafka" / "logs"
    clean.mkdir(parents=True)
    (clean / "server.log").write_text("sasl.jaas.config = [hidden]\nssl.key.password = null\nstarted\n")
    (clean / "server.log.1").write_text("password=********** (masked)\n")
    assert scan_logs([tmp_path / "clean"]) == []

    leaky = tmp_path / "leaky"
    leaky.mkdir()
    try:
        (leaky / "driver.out").write_text(f"options: sasl password={canary}\n")
        (leaky / "run.log").write_text("-----BEGIN " + "PRIVATE KEY-----\nMIIE...\n")
        (leaky / "secret.pem").write_text("-----BEGIN " + "PRIVATE KEY-----\n")  # not a log
        findings = scan_logs([leaky])
    finally:  # deliberate leaks must not fail the session-wide log check
        shutil.rmtree(leaky)
    assert len([f for f in findings if "a test's secret value" in f]) == 1
    assert len([f for f in findings if "password assigned: password=..." in f]) == 1
    assert len([f for f in findings if "private key block" in f]) == 1
    assert all(canary[:8] not in f for f in findings)  # the report never repeats the secret
    assert not [f for f in findings if "secret.pem" in f]


def test_repository_holds_no_secrets() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    findings: list[str] = []
    scanned = 0
    for raw in filter(None, files):
        path = REPO_ROOT / raw.decode()
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary (images)
        scanned += 1
        text = data.decode("utf-8", errors="replace")
        config_like = path.suffix in CONFIG_SUFFIXES or path.name in ("Dockerfile", ".env.example")
        findings += [f"{raw.decode()}: {f}" for f in find_secrets(text, config_like)]
    assert scanned > 30  # the scan really read the tree
    assert not findings, "\n".join(findings)
    assert not (REPO_ROOT / "deploy" / ".env").exists() or "deploy/.env" not in {
        r.decode() for r in files if r
    }


# --- server-side encryption ----------------------------------------------------------------


def test_sse_settings_reach_spark_conf() -> None:
    assert "spark.hadoop.fs.s3a.encryption.algorithm" not in spark_conf(load_settings({}))

    sse_s3 = spark_conf(load_settings({"MOVESMART_S3_SSE": "SSE-S3"}))
    assert sse_s3["spark.hadoop.fs.s3a.encryption.algorithm"] == "SSE-S3"
    assert "spark.hadoop.fs.s3a.encryption.key" not in sse_s3

    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    kms = spark_conf(load_settings({"MOVESMART_S3_SSE": "sse-kms", "MOVESMART_S3_SSE_KMS_KEY_ID": key}))
    assert kms["spark.hadoop.fs.s3a.encryption.algorithm"] == "SSE-KMS"
    assert kms["spark.hadoop.fs.s3a.encryption.key"] == key

    managed = spark_conf(load_settings({"MOVESMART_S3_SSE": "SSE-KMS"}))  # the aws/s3 key
    assert managed["spark.hadoop.fs.s3a.encryption.algorithm"] == "SSE-KMS"
    assert "spark.hadoop.fs.s3a.encryption.key" not in managed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOVESMART_S3_SSE": "AES256"}, "MOVESMART_S3_SSE"),
        ({"MOVESMART_S3_SSE_KMS_KEY_ID": "alias/movesmart"}, "MOVESMART_S3_SSE is not SSE-KMS"),
        (
            {"MOVESMART_S3_SSE": "SSE-KMS", "MOVESMART_S3_SSE_KMS_KEY_ID": "key'; rm -rf /"},
            "MOVESMART_S3_SSE_KMS_KEY_ID",
        ),
    ],
)
def test_sse_settings_are_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_cluster_master_lets_executors_reach_the_driver() -> None:
    local = spark_conf(load_settings({}))
    assert local["spark.driver.bindAddress"] == local["spark.driver.host"] == "127.0.0.1"
    cluster = spark_conf(load_settings({"MOVESMART_SPARK_MASTER": "spark://spark-master:7077"}))
    assert cluster["spark.master"] == "spark://spark-master:7077"
    assert "spark.driver.host" not in cluster and "spark.driver.bindAddress" not in cluster


_SPARK_WRITE = textwrap.dedent(
    """
    import sys
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.spark_session import build_spark
    settings = load_settings()
    spark = build_spark(settings, "sse-probe")
    spark.range(100).selectExpr("id", "cast(id as string) as name").repartition(2) \\
        .write.mode("overwrite").parquet(sys.argv[1])
    spark.stop()
    """
)


def test_spark_writes_are_encrypted_with_the_configured_kms_key(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real S3A write to the moto endpoint; every object must carry SSE-KMS and our key."""
    aws = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    for k, v in aws.items():
        monkeypatch.setenv(k, v)
    kms = boto3.client("kms", endpoint_url=moto_endpoint, region_name="us-east-1")
    key_arn = kms.create_key(Description="movesmart warehouse")["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"sse-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)

    env = {
        **os.environ,
        **aws,
        "MOVESMART_HOME": str(tmp_path / "home"),
        "MOVESMART_WAREHOUSE": f"s3a://{bucket}/warehouse",
        "MOVESMART_S3_ENDPOINT": moto_endpoint,
        "MOVESMART_S3_SSE": "SSE-KMS",
        "MOVESMART_S3_SSE_KMS_KEY_ID": key_arn,
        "MOVESMART_SPARK_MASTER": "local[1]",
        "MOVESMART_SPARK_DRIVER_MEMORY": "512m",
    }
    target = f"s3a://{bucket}/warehouse/sse_probe"
    out = subprocess.run(
        [sys.executable, "-c", _SPARK_WRITE, target],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    parts = [k for k in keys if k.endswith(".parquet")]
    assert len(parts) == 2, keys
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "aws:kms", key
        assert head.get("SSEKMSKeyId") == key_arn, key


# --- Kafka SSL / SASL passthrough --------------------------------------------------------


def _pem_files(folder: Path) -> dict[str, Path]:
    """A throwaway CA and a client certificate signed by it (PEM), for librdkafka to load."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool):  # type: ignore[no-untyped-def]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("movesmart-test-ca", ca_key, "movesmart-test-ca", ca_key, ca=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = cert("movesmart-client", client_key, "movesmart-test-ca", ca_key, ca=False)
    files = {
        "ca": folder / "ca.pem",
        "ca_key": folder / "ca.key",
        "cert": folder / "client.pem",
        "key": folder / "client.key",
    }
    files["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files["ca_key"].write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files["ca_key"].chmod(0o600)
    files["cert"].write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files["key"].chmod(0o600)
    return files


@pytest.fixture
def secure_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """SASL_SSL with SCRAM-SHA-512 and mutual TLS, set only through the environment."""
    pem = _pem_files(tmp_path)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "broker-1.example.internal:9096,broker-2.example.internal:9096",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "movesmart",
        "KAFKA_SASL_PASSWORD": add_canary("canary-" + uuid.uuid4().hex),
        "KAFKA_SSL_CA_LOCATION": str(pem["ca"]),
        "KAFKA_SSL_CERTIFICATE_LOCATION": str(pem["cert"]),
        "KAFKA_SSL_KEY_LOCATION": str(pem["key"]),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)  # no stray .env of the working tree
    return env


def _expected_librdkafka(env: dict[str, str]) -> dict[str, str]:
    return {
        "bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "movesmart",
        "sasl.password": env["KAFKA_SASL_PASSWORD"],
        "ssl.ca.location": env["KAFKA_SSL_CA_LOCATION"],
        "ssl.certificate.location": env["KAFKA_SSL_CERTIFICATE_LOCATION"],
        "ssl.key.location": env["KAFKA_SSL_KEY_LOCATION"],
    }


def test_producer_gets_every_security_setting(secure_env: dict[str, str]) -> None:
    from confluent_kafka import Producer

    from movesmart_dagster.simulator.producer import producer_config

    settings = load_settings()
    assert settings.kafka_client_config() == _expected_librdkafka(secure_env)
    conf = producer_config(settings)
    for key, value in _expected_librdkafka(secure_env).items():
        assert conf[key] == value, key
    # librdkafka validates every property and loads the CA, certificate and key here
    Producer(conf).flush(0)


def test_dagster_kafka_resource_gets_every_security_setting(secure_env: dict[str, str]) -> None:
    import dagster as dg

    from movesmart_dagster.defs.resources import KafkaResource

    # resolved the way Dagster resolves it for a run: EnvVar fields read from the environment
    with dg.build_resources({"kafka": KafkaResource.from_env()}) as resources:
        kafka = resources.kafka
        assert kafka.settings().kafka_client_config() == _expected_librdkafka(secure_env)
        assert kafka.admin() is not None  # a real AdminClient: it loads the PEM files too


def test_spark_kafka_source_gets_every_security_setting(secure_env: dict[str, str]) -> None:
    opts = load_settings().spark_kafka_options()
    password = secure_env["KAFKA_SASL_PASSWORD"]
    assert opts["kafka.bootstrap.servers"] == secure_env["KAFKA_BOOTSTRAP_SERVERS"]
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert opts["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert opts["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="movesmart" password="{password}";'
    )
    assert opts["kafka.ssl.truststore.type"] == "PEM"
    assert opts["kafka.ssl.truststore.location"] == secure_env["KAFKA_SSL_CA_LOCATION"]
    assert opts["kafka.ssl.keystore.type"] == "PEM"
    assert opts["kafka.ssl.keystore.certificate.chain"].startswith("-----BEGIN CERTIFICATE-----")
    assert opts["kafka.ssl.keystore.key"] == Path(secure_env["KAFKA_SSL_KEY_LOCATION"]).read_text()


def test_ssl_without_sasl_sends_no_sasl_settings(tmp_path: Path) -> None:
    pem = _pem_files(tmp_path)
    settings = load_settings({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": str(pem["ca"])})
    conf = settings.kafka_client_config()
    assert conf["security.protocol"] == "SSL" and conf["ssl.ca.location"] == str(pem["ca"])
    assert not [k for k in conf if k.startswith("sasl.")]
    opts = settings.spark_kafka_options()
    assert opts["kafka.security.protocol"] == "SSL"
    assert not [k for k in opts if "sasl" in k]
    assert "kafka.ssl.keystore.key" not in opts  # no client certificate configured


def test_sasl_password_is_never_printed(secure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    password = secure_env["KAFKA_SASL_PASSWORD"]
    settings = load_settings()
    shown = [repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()]
    assert all(password not in s for s in shown)
    assert isinstance(settings, Settings)
    # an error in another setting must not echo the password either
    with pytest.raises(SettingsError) as err:
        load_settings({**secure_env, "KAFKA_SASL_MECHANISM": "GSSAPI"})
    assert password not in str(err.value)
    monkeypatch.delenv("KAFKA_SASL_MECHANISM")
    with pytest.raises(SettingsError) as err:  # SASL without a mechanism
        load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": password})
    assert password not in str(err.value)
    assert json.loads(settings.model_dump_json())["kafka_sasl_password"] == "**********"


# --- end to end: a real broker with a SASL_SSL (SCRAM-SHA-512, mutual TLS) listener --------


def _server_pem(folder: Path, ca: dict[str, Path]) -> Path:
    """A broker key pair signed by the test CA, as the PEM keystore Kafka reads."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(ca["ca"].read_bytes())
    ca_key = serialization.load_pem_private_key(ca["ca_key"].read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    keystore = folder / "broker-keystore.pem"
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    keystore.chmod(0o600)
    return keystore


class _SecureBroker:
    """The project's KafkaBroker with a SASL_SSL listener added (PLAINTEXT stays for readiness)."""

    def __init__(self, settings: Settings, sasl_port: int, keystore: Path, ca: Path, user: str, pw: str):
        from movesmart_dagster.stack.kafka_broker import KafkaBroker, KafkaNode

        outer = self

        class Broker(KafkaBroker):
            def _server_properties(self, node: KafkaNode) -> str:
                lines = super()._server_properties(node).splitlines()
                out = []
                for line in lines:
                    key = line.split("=", 1)[0]
                    if key == "listeners":
                        line += f",SASL_SSL://127.0.0.1:{sasl_port}"
                    elif key == "advertised.listeners":
                        line += f",SASL_SSL://localhost:{sasl_port}"
                    elif key == "listener.security.protocol.map":
                        line += ",SASL_SSL:SASL_SSL"
                    out.append(line)
                out += [
                    "sasl.enabled.mechanisms=SCRAM-SHA-512",
                    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                    "ssl.keystore.type=PEM",
                    f"ssl.keystore.location={keystore}",
                    "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={ca}",
                    "ssl.client.auth=required",
                    "",
                ]
                return "\n".join(out)

            def _format_command(self, node: KafkaNode) -> list[str]:
                scram = f"SCRAM-SHA-512=[name={outer.user},password={outer.pw}]"
                return [*super()._format_command(node), "--add-scram", scram]

        self.user, self.pw = user, pw
        self.broker = Broker(settings, heap="384m")


_SPARK_READ = textwrap.dedent(
    """
    import json, sys
    from movesmart_dagster.settings import load_settings
    from movesmart_dagster.spark_session import build_spark
    settings = load_settings()
    spark = build_spark(settings, "sasl-ssl-probe")
    df = (spark.read.format("kafka").options(**settings.spark_kafka_options())
          .option("subscribe", sys.argv[1]).option("startingOffsets", "earliest").load())
    values = sorted(r.value.decode() for r in df.select("value").collect())
    print("VALUES=" + json.dumps(values))
    spark.stop()
    """
)


def test_every_client_talks_sasl_ssl_to_a_real_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Producer, Dagster resource and Spark reach a SCRAM-SHA-512 + mutual-TLS listener
    using nothing but the settings; a wrong password is refused."""
    import dagster as dg
    from confluent_kafka import Producer

    from movesmart_dagster.defs.resources import KafkaResource
    from movesmart_dagster.simulator.producer import producer_config
    from movesmart_dagster.stack.processes import free_port
    from movesmart_dagster_tests.conftest import stack_env

    pem = _pem_files(tmp_path)
    keystore = _server_pem(tmp_path, pem)
    password = add_canary("canary-" + uuid.uuid4().hex)
    sasl_port = free_port()
    base_env = stack_env(tmp_path / "home")
    broker = _SecureBroker(load_settings(base_env), sasl_port, keystore, pem["ca"], "movesmart", password)
    secure = {
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{sasl_port}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "movesmart",
        "KAFKA_SASL_PASSWORD": password,
        "KAFKA_SSL_CA_LOCATION": str(pem["ca"]),
        "KAFKA_SSL_CERTIFICATE_LOCATION": str(pem["cert"]),
        "KAFKA_SSL_KEY_LOCATION": str(pem["key"]),
        "MOVESMART_HOME": str(tmp_path / "client-home"),
    }
    topic = f"secure_probe_{uuid.uuid4().hex[:8]}"
    broker.broker.up()
    try:
        for k, v in secure.items():
            monkeypatch.setenv(k, v)
        monkeypatch.chdir(tmp_path)
        settings = load_settings()

        # the Dagster resource creates the topic over SASL_SSL
        with dg.build_resources({"kafka": KafkaResource.from_env()}) as resources:
            assert resources.kafka.ensure_topics([topic]) == [topic]
            assert topic in resources.kafka.admin().list_topics(timeout=20).topics

        # the simulator's producer configuration delivers over SASL_SSL
        producer = Producer(producer_config(settings))
        delivered: list[str] = []
        for i in range(5):
            producer.produce(topic, f"m{i}".encode(), on_delivery=lambda e, m: delivered.append(str(e)))
        assert producer.flush(30) == 0
        assert delivered == ["None"] * 5

        # Spark's Kafka source reads them back with spark_kafka_options (JAAS + PEM stores)
        spark_log = tmp_path / "spark-driver.log"  # scanned for the password at session end
        out = subprocess.run(
            [sys.executable, "-c", _SPARK_READ, topic],
            env={**os.environ, "MOVESMART_SPARK_MASTER": "local[1]", "MOVESMART_SPARK_DRIVER_MEMORY": "512m"},
            capture_output=True,
            text=True,
            timeout=240,
        )
        spark_log.write_text(out.stdout + out.stderr)
        assert out.returncode == 0, out.stderr[-3000:]
        line = next(s for s in out.stdout.splitlines() if s.startswith("VALUES="))
        assert json.loads(line.removeprefix("VALUES=")) == [f"m{i}" for i in range(5)]

        # and a wrong password is refused by the broker
        wrong = load_settings({**secure, "KAFKA_SASL_PASSWORD": "not-" + password[:6]})
        errors: list[str] = []
        bad = Producer(
            {
                **producer_config(wrong),
                "message.timeout.ms": 5000,
                "error_cb": lambda e: errors.append(e.str()),
            }
        )
        bad.produce(topic, b"x", on_delivery=lambda e, m: errors.append(str(e)))
        bad.flush(15)
        assert any("auth" in e.lower() for e in errors), errors
    finally:
        broker.broker.down()
