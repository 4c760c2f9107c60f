"""The Dagster instance `make dev` and `movesmart backfill` share: quiet terminal, no telemetry."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from movesmart_dagster.dev import ensure_instance_yaml

_BEFORE_ISSUE_11 = (
    "# written by `make dev` (movesmart_dagster/dev.py); edit freely\n"
    "run_monitoring:\n  enabled: true\n  poll_interval_seconds: 30\n"
    "telemetry:\n  enabled: false\n"
)


def _instance_settings(home: Path) -> tuple[str | None, bool]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.python_log_level, instance.telemetry_enabled


def _tick_retention(home: Path) -> dict[str, dict[str, int]]:
    from dagster._core.definitions.run_request import InstigatorType

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return {
            kind.value: {s.value: d for s, d in instance.get_tick_retention_settings(kind).items()}
            for kind in (InstigatorType.SENSOR, InstigatorType.SCHEDULE)
        }


def _pools(home: Path) -> tuple[int | None, str | None, int | None]:
    """The default pool limit and granularity, and the maintenance pool's slots in the instance."""
    from movesmart_dagster.defs.keys import MAINTENANCE_POOL

    with dg.DagsterInstance.from_config(str(home)) as instance:
        pools = instance.get_concurrency_config().pool_config
        granularity = pools.pool_granularity.value if pools.pool_granularity else None
        storage = instance.event_log_storage
        slots = (
            storage.get_concurrency_info(MAINTENANCE_POOL).slot_count
            if MAINTENANCE_POOL in storage.get_concurrency_keys()
            else None
        )
        return pools.default_pool_limit, granularity, slots


RETENTION = {
    "SENSOR": {"STARTED": 7, "SKIPPED": 1, "SUCCESS": 7, "FAILURE": 30},
    "SCHEDULE": {"STARTED": 30, "SKIPPED": 7, "SUCCESS": 30, "FAILURE": 30},
}
# Dagster's defaults: a sensor's SUCCESS and FAILURE ticks, and every schedule tick, kept forever
FOREVER = {
    "SENSOR": {"STARTED": -1, "SKIPPED": 7, "SUCCESS": -1, "FAILURE": -1},
    "SCHEDULE": {"STARTED": -1, "SKIPPED": -1, "SUCCESS": -1, "FAILURE": -1},
}


def test_a_new_instance_prints_run_events_from_info_up_and_no_telemetry(tmp_path: Path) -> None:
    ensure_instance_yaml(tmp_path)
    assert _instance_settings(tmp_path) == ("INFO", False)
    assert _tick_retention(tmp_path) == RETENTION  # ticks are purged: the storage stays bounded
    assert _pools(tmp_path) == (1, "run", 1)  # one maintenance run at a time, the others queued


def test_an_instance_written_before_gets_the_log_level_and_an_edited_one_is_left_alone(
    tmp_path: Path,
) -> None:
    ours, edited = tmp_path / "ours", tmp_path / "edited"
    ours.mkdir(), edited.mkdir()
    (ours / "dagster.yaml").write_text(_BEFORE_ISSUE_11)
    (edited / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ensure_instance_yaml(ours)
    ensure_instance_yaml(edited)
    assert _instance_settings(ours) == ("INFO", False)
    assert _instance_settings(edited) == (None, False)
    assert _tick_retention(ours) == RETENTION
    assert _tick_retention(edited) == FOREVER
    assert _pools(ours) == (1, "run", 1) and _pools(edited) == (None, None, None)
    ensure_instance_yaml(ours)  # once only
    assert (ours / "dagster.yaml").read_text().count("python_logs:") == 1
    assert (ours / "dagster.yaml").read_text().count("retention:") == 1
    assert (ours / "dagster.yaml").read_text().count("concurrency:") == 1
