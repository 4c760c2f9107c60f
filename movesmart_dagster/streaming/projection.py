"""Routed rows -> a table's stored columns, as the streaming job appends them.

Why apart from validation: the routed shape (`<table>__<field>` columns, lineage, `_dest`)
is what both validation passes produce; what a table stores of it changes with
`schemas.py`'s columns, not with how a row was judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from movesmart_dagster.schemas import (
    LINEAGE_COLUMNS,
    PARTITION_COLUMN,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    RECORDS_BY_NAME,
)

if TYPE_CHECKING:
    from datetime import datetime


def table_projection(table: str, ingested_at: datetime) -> list[str]:
    """SQL selecting one table's stored columns (and the partition column) from routed rows."""
    ingested = f"timestamp_micros({int(ingested_at.timestamp() * 1_000_000)}) AS ingested_at"
    if table == QUARANTINE_TABLE:
        cols = [ingested if n == "ingested_at" else n for n, _ in QUARANTINE_COLUMNS]
        return [*cols, PARTITION_COLUMN]
    record = RECORDS_BY_NAME[table.removesuffix("_data")]
    own = [f"`{table}__{f.name}` AS `{f.name}`" for f in record.fields]
    lineage = [ingested if n == "ingested_at" else n for n, _ in LINEAGE_COLUMNS]
    return [*own, *lineage, PARTITION_COLUMN]
