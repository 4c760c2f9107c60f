"""The five tables and `quarantine` as external assets (AssetSpecs) fed by the Kafka topics.

Why external: no Dagster op computes a table; the streaming job appends to them batch by
batch, and the op supervising it reports their materializations. Each table is partitioned
by day with the one definition the analytics use (`defs/partitions.py`): a table's day is
its rows with that `event_date` (quarantine: of that Kafka timestamp's date). Each spec
carries the column schema, its location and — the five record tables — a
freshness policy whose window fits the rate the table should receive records at: a table fed
every few seconds fails after MOVESMART_FRESHNESS_FAIL_MINUTES (5 by default) without new data,
while `emergency_data`, which gets a record only when an incident starts or ends, would fail
and recover every few minutes with that window (a third of the gaps between its records in
the simulator are longer than 5 minutes), so its window is derived from the incident rate.
"""

from __future__ import annotations

import math
from datetime import timedelta

import dagster as dg

from movesmart_dagster.defs.keys import GROUP_TABLES, TABLE_KEYS, TOPIC_KEYS
from movesmart_dagster.defs.partitions import daily_partitions
from movesmart_dagster.defs.quiet_sensors import quiet
from movesmart_dagster.schemas import QUARANTINE_TABLE, RECORDS_BY_NAME, TABLES, columns_for_table
from movesmart_dagster.settings import Settings
from movesmart_dagster.simulator.fleet import EMERGENCY_TOPIC, INCIDENT_PROB, SimConfig
from movesmart_dagster.tables.catalog import table_location

# Records a vehicle sends to each table per tick, in the simulator's model of the fleet: one
# reading per stream, and an emergency record only when an incident starts (probability
# INCIDENT_PROB per vehicle-tick, about one per vehicle-hour; its `Resolved` record follows
# later, so the gaps between incident starts bound the gaps between emergency records).
RECORDS_PER_VEHICLE_TICK: dict[str, float] = {t: 1.0 for t in TABLES} | {EMERGENCY_TOPIC: INCIDENT_PROB}
# The fleet the window is sized for: the simulator's default (5 vehicles, a reading every 5 s),
# which `make dev` runs (faster than real time, so with more incidents per minute, never fewer).
MODEL_FLEET = SimConfig()
# Records arrive as a Poisson process, so a gap longer than w has probability exp(-w / mean gap):
# the window is the gap that only one in a thousand gaps exceeds (6.9 mean gaps), so a healthy
# stream fails its freshness about once per thousand records of the table, not every few minutes.
FALSE_FAILURE_PER_GAP = 1e-3


def expected_gap_seconds(table: str, fleet: SimConfig = MODEL_FLEET) -> float:
    """Mean time between two records of `table` from a healthy fleet."""
    return fleet.tick_seconds / (fleet.vehicles * RECORDS_PER_VEHICLE_TICK[table])


def freshness_window(settings: Settings, table: str) -> timedelta:
    """The settings' window (it covers the pipeline's own latency), or longer for a rare stream."""
    rare = expected_gap_seconds(table) * math.log(1 / FALSE_FAILURE_PER_GAP)
    return timedelta(minutes=max(settings.freshness_fail_minutes, math.ceil(rare / 60)))


def freshness_policy(settings: Settings, table: str) -> dg.FreshnessPolicy:
    fail = freshness_window(settings, table)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=fail / 2)


def table_specs(settings: Settings) -> list[dg.AssetSpec]:
    partitions = daily_partitions(settings)
    specs = []
    for table, key in TABLE_KEYS.items():
        if table == QUARANTINE_TABLE:
            deps = list(TOPIC_KEYS.values())
            doc = "Records that failed the data contract, bytes intact, with the reason (any topic)."
        else:
            deps = [TOPIC_KEYS[table]]
            doc = f"{RECORDS_BY_NAME[table.removesuffix('_data')].doc.capitalize()}: validated records of topic `{table}`."
        specs.append(
            dg.AssetSpec(
                key=key,
                deps=deps,
                group_name=GROUP_TABLES,
                description=doc
                + " An Iceberg table: one append per committed micro-batch; partitioned by day (UTC).",
                partitions_def=partitions,
                kinds={"spark", "iceberg"},
                # quarantine staying empty is good news, not staleness: no freshness policy there
                freshness_policy=None if table == QUARANTINE_TABLE else freshness_policy(settings, table),
                owners=["team:data-platform"],
                tags={"layer": "bronze" if table == QUARANTINE_TABLE else "silver"},
                metadata={
                    "location": dg.MetadataValue.path(table_location(settings, table)),
                    "dagster/column_schema": dg.TableSchema(
                        columns=[dg.TableColumn(name, type_) for name, type_ in columns_for_table(table)]
                        + [dg.TableColumn("event_date", "string", description="partition column")]
                    ),
                },
            )
        )
    return specs


def table_freshness_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    """The same windows as asset checks, one per table, so staleness shows in the asset list.

    Why both: the freshness policy drives the daemon's freshness state (and the alerts), but
    Dagster OSS 1.13 shows that state only on the asset's own page — its catalog list marks a
    row red only for a failed ERROR check (or a legacy policy), so a stale table stayed green
    "Materialized" there. A failed last-update check turns its row red until new data arrives
    (the next materialization supersedes the failed evaluation). One check per table keeps each
    executable on its own from the table's Checks tab.
    """
    return [
        check
        for table in TABLES
        for check in dg.build_last_update_freshness_checks(
            assets=[TABLE_KEYS[table]],
            lower_bound_delta=freshness_window(settings, table),
            severity=dg.AssetCheckSeverity.ERROR,
        )
    ]


def table_freshness_sensor(checks: list[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """Evaluates each table's freshness check when it is due (once its last pass expires)."""
    return quiet(
        dg.build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name="tables_freshness_checks_sensor",
            minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    )
