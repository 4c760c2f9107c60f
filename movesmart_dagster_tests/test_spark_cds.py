"""The Spark driver's class-data archive: built from a real workload, mapped by a real driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from movesmart_dagster.settings import REPO_ROOT, load_settings
from movesmart_dagster.spark_session import archive_option, driver_java_options, spark_conf

sys.path.insert(0, str(REPO_ROOT / "tools"))
from build_spark_cds import build_archive  # noqa: E402  (a make-setup tool, not the package)

JARS = REPO_ROOT / ".jars"

# a driver started with the archive forced on (-Xshare:on fails the JVM if it cannot map
# it) that logs where each class came from
_DRIVER = """
import sys
from movesmart_dagster.settings import load_settings
from movesmart_dagster.spark_session import build_spark
spark = build_spark(load_settings(), "cds-check", extra={"spark.driver.extraJavaOptions": sys.argv[1]})
assert spark.range(10).selectExpr("sum(id)").first()[0] == 45
spark.stop()
"""


def test_the_archive_is_built_and_spark_classes_load_from_it(tmp_path: Path) -> None:
    settings = load_settings({"MOVESMART_JARS_DIR": str(JARS), "MOVESMART_HOME": str(tmp_path / "home")})
    archive = build_archive(settings, target=tmp_path / "driver.jsa")
    assert archive.stat().st_size > 10 * 2**20
    assert not list(tmp_path.glob(".*partial"))  # renamed into place, nothing left behind

    class_log = tmp_path / "classes.log"
    options = (
        f"{driver_java_options(settings, cds=False)} -Xshare:on -XX:SharedArchiveFile={archive} "
        f"-Xlog:class+load=info:file={class_log}"
    )
    env = {**os.environ, "MOVESMART_JARS_DIR": str(JARS), "MOVESMART_SPARK_MASTER": "local[1]"}
    done = subprocess.run([sys.executable, "-c", _DRIVER, options], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = class_log.read_text()
    # Spark's own classes come from the archive's top (dynamic) layer, not from the jars
    assert "org.apache.spark.sql.SparkSession source: shared objects file (top)" in loaded
    from_archive = loaded.count("source: shared objects file (top)")
    assert from_archive > 3000, from_archive


@pytest.fixture
def jars_dir(tmp_path: Path) -> Path:
    (tmp_path / "spark").mkdir()
    (tmp_path / "spark" / "connector.jar").write_bytes(b"")
    return tmp_path


def test_the_driver_maps_the_archive_only_when_it_exists_and_is_wanted(jars_dir: Path) -> None:
    settings = load_settings({"MOVESMART_JARS_DIR": str(jars_dir)})
    assert archive_option(settings) is None
    assert "SharedArchiveFile" not in spark_conf(settings)["spark.driver.extraJavaOptions"]

    settings.spark_cds_archive.write_bytes(b"archive")
    options = spark_conf(settings)["spark.driver.extraJavaOptions"]
    assert f"-XX:SharedArchiveFile={jars_dir / 'spark-driver.jsa'}" in options
    assert "-Duser.timezone=UTC" in options and "-XX:+UseParallelGC" in options
    # executors (other JVMs on a cluster) never get it
    assert "SharedArchiveFile" not in spark_conf(settings)["spark.executor.extraJavaOptions"]

    off = load_settings({"MOVESMART_JARS_DIR": str(jars_dir), "MOVESMART_SPARK_CDS": "false"})
    assert "SharedArchiveFile" not in spark_conf(off)["spark.driver.extraJavaOptions"]
