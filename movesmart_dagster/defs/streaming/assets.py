"""The five tables and `quarantine` as external assets (AssetSpecs) fed by the Kafka topics.

Why external: no Dagster op computes a table; the streaming job appends to them batch by
batch, and the op supervising it reports one materialization per table per committed
batch. Each spec carries the column schema, its location and — the five record tables — a
freshness policy (fail after MOVESMART_FRESHNESS_FAIL_MINUTES without new data, 5 by default).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from movesmart_dagster.defs.keys import GROUP_TABLES, TABLE_KEYS, TOPIC_KEYS
from movesmart_dagster.schemas import QUARANTINE_TABLE, RECORDS_BY_NAME, columns_for_table
from movesmart_dagster.settings import Settings


def freshness_policy(settings: Settings) -> dg.FreshnessPolicy:
    fail = timedelta(minutes=settings.freshness_fail_minutes)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=fail / 2)


def table_specs(settings: Settings) -> list[dg.AssetSpec]:
    policy = freshness_policy(settings)
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
                description=doc + " Appended by the streaming job; partitioned by `event_date` on disk.",
                kinds={"spark", "parquet"},
                # quarantine staying empty is good news, not staleness: no freshness policy there
                freshness_policy=None if table == QUARANTINE_TABLE else policy,
                owners=["team:data-platform"],
                tags={"layer": "bronze" if table == QUARANTINE_TABLE else "silver"},
                metadata={
                    "location": dg.MetadataValue.path(f"{settings.warehouse}/{table}"),
                    "dagster/column_schema": dg.TableSchema(
                        columns=[dg.TableColumn(name, type_) for name, type_ in columns_for_table(table)]
                        + [dg.TableColumn("event_date", "string", description="partition column")]
                    ),
                },
            )
        )
    return specs
