"""Settings come only from their documented variables, spelled exactly as the README shows.

Issue 11: with reading by field name on, the field `home` came from $HOME, so every
`movesmart` command outside `make` used the user's home directory as its data folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from movesmart_dagster.settings import Settings, load_settings

UNDOCUMENTED = "undocumented-value"


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No documented variable set and an empty working directory (no `.env`)."""
    for field in Settings.model_fields.values():
        monkeypatch.delenv(field.alias, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_home_is_dot_movesmart_in_the_working_directory_whatever_HOME_is(clean_env, monkeypatch, tmp_path):
    elsewhere = tmp_path / "someone"
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(elsewhere))
    settings = load_settings()
    assert settings.home_dir == clean_env / ".movesmart"
    assert settings.warehouse == (clean_env / ".movesmart" / "warehouse").as_uri()


def _stack_status(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`movesmart stack status` as a user runs it in `cwd` (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "movesmart_dagster.cli", "stack", "status"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_cli_uses_dot_movesmart_outside_make(clean_env, tmp_path):
    """What a user sees: `movesmart stack status` in a shell with HOME set and no MOVESMART_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOVESMART_")}
    env["HOME"] = str(tmp_path)
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"  # nothing listens: status only, no broker here
    done = _stack_status(clean_env, env)
    assert f"home    {clean_env / '.movesmart'}\n" in done.stdout, done.stdout


def _undocumented_names() -> dict[str, str]:
    """For every field: its name, its upper-cased name and its alias in lower case."""
    names: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        for candidate in (name, name.upper(), field.alias.lower()):
            if candidate != field.alias:
                names[candidate] = field.alias
    return names


def test_every_field_is_read_from_a_variable_the_readme_documents():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert [f.alias for f in Settings.model_fields.values() if f.alias not in readme] == []


@pytest.mark.parametrize("via", ["environment", "dotenv"])
def test_no_field_can_be_set_by_an_undocumented_name(clean_env, monkeypatch, via):
    baseline = load_settings().model_dump()
    names = _undocumented_names()
    assert "HOME" in names and "home" in names and "movesmart_home" in names
    if via == "environment":
        for name in names:
            monkeypatch.setenv(name, UNDOCUMENTED)
    else:
        (clean_env / ".env").write_text("".join(f"{name}={UNDOCUMENTED}\n" for name in names))
    # read by any of those names, a field would change or fail validation
    assert load_settings().model_dump() == baseline


def test_documented_names_still_set_every_field(clean_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MOVESMART_GLUE_DATABASE", "city2")
    (clean_env / ".env").write_text("MOVESMART_SUPERVISOR_STALL_SECONDS=42\n")
    settings = load_settings()
    assert settings.home_dir == tmp_path / "h"
    assert settings.glue_database == "city2"
    assert settings.supervisor_stall_seconds == 42


def test_the_start_date_skew_and_materialization_interval(clean_env, monkeypatch):
    from datetime import UTC, datetime, timedelta

    settings = load_settings()
    assert (settings.start_date, settings.max_future_skew) == ("2024-01-01", timedelta(days=1))
    assert settings.start_time == datetime(2024, 1, 1, tzinfo=UTC)
    assert settings.materialization_interval_seconds == 60
    monkeypatch.setenv("MOVESMART_START_DATE", "2025-02-03")
    monkeypatch.setenv("MOVESMART_MAX_FUTURE_SKEW", "PT6H")
    monkeypatch.setenv("MOVESMART_MATERIALIZATION_INTERVAL_SECONDS", "5")
    settings = load_settings()
    assert settings.start_time == datetime(2025, 2, 3, tzinfo=UTC)
    assert settings.max_future_skew == timedelta(hours=6)
    assert settings.materialization_interval_seconds == 5


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MOVESMART_START_DATE", "2024-02-30", "expected a date YYYY-MM-DD"),
        ("MOVESMART_MAX_FUTURE_SKEW", "-PT1H", "at least 0"),
        ("MOVESMART_MATERIALIZATION_INTERVAL_SECONDS", "-1", "greater than or equal to 0"),
    ],
)
def test_bad_start_date_skew_or_interval_name_their_variable(variable, value, message):
    from movesmart_dagster.settings import SettingsError

    with pytest.raises(SettingsError, match=f"{variable}='{value}'.*{message}"):
        load_settings({variable: value})


def test_the_old_start_date_variable_is_refused_with_its_new_name(clean_env, monkeypatch):
    """Renamed, not aliased: a value under the old name is neither ignored nor one of two
    names for one setting."""
    from movesmart_dagster.settings import SettingsError

    monkeypatch.setenv("MOVESMART_ANALYTICS_START_DATE", "2024-03-01")
    with pytest.raises(
        SettingsError, match="MOVESMART_ANALYTICS_START_DATE was renamed MOVESMART_START_DATE"
    ):
        load_settings()


def test_resources_carry_settings_declared_once(clean_env, tmp_path):
    """A resource's settings config comes from `Settings` (named once in `carrying`): each field is
    described by its variable, unset means the settings default, and a launchpad value is
    validated by the same rules as the variable (a bad one names the variable)."""
    from movesmart_dagster.defs.resources import build_resources
    from movesmart_dagster.settings import SettingsError

    carried = {name: r for name, r in build_resources().items() if getattr(r, "_FIELDS", ())}
    assert set(carried) == {"kafka", "spark", "warehouse", "catalog", "redshift", "duckdb"}
    for resource in carried.values():
        fields = type(resource).model_fields
        for name in resource._FIELDS:
            alias = Settings.model_fields[name].alias
            assert fields[name].description.startswith(alias), (type(resource).__name__, name)
            assert getattr(resource, name) is None  # nothing set: the settings default
        assert resource.settings().model_dump() == load_settings().model_dump()
    spark = type(carried["spark"])(home=str(tmp_path / "h"), spark_driver_memory="3g")
    assert spark.settings().home_dir == tmp_path / "h" and spark.settings().spark_driver_memory == "3g"
    with pytest.raises(SettingsError, match="MOVESMART_SPARK_DRIVER_MEMORY='2gb'"):
        type(carried["spark"])(spark_driver_memory="2gb").settings()


def test_dot_env_reaches_the_cli_the_resources_and_their_children_alike(clean_env, monkeypatch, tmp_path):
    """A `.env` in the working directory is read the same way by the settings, the CLI, the
    resources and a child job's environment; a variable set in the environment wins over it."""
    from movesmart_dagster.defs.resources import build_resources

    (clean_env / ".env").write_text("MOVESMART_SPARK_MASTER=local[3]\nMOVESMART_HOME=from-dot-env\n")
    monkeypatch.setenv("MOVESMART_SPARK_MASTER", "")  # so the value .env puts there is removed after
    monkeypatch.delenv("MOVESMART_SPARK_MASTER")
    monkeypatch.setenv("MOVESMART_HOME", str(tmp_path / "from-environment"))
    assert load_settings().spark_master == "local[3]"
    spark = build_resources()["spark"].process_config_and_initialize()  # EnvVar fields resolved
    assert spark.settings().spark_master == "local[3]"
    assert spark.child_env()["MOVESMART_SPARK_MASTER"] == "local[3]"
    assert spark.settings().home_dir == tmp_path / "from-environment"
    env = {k: v for k, v in os.environ.items() if k not in ("MOVESMART_SPARK_MASTER", "MOVESMART_HOME")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"  # nothing listens: status only
    done = _stack_status(clean_env, env)
    assert f"home    {clean_env / 'from-dot-env'}\n" in done.stdout, done.stdout
