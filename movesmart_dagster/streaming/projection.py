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


def batch_timestamp_sql(at: datetime) -> str:
    """SQL of a timestamp that is the same for every row of a batch, written so that Spark's
    generated code stays the same from batch to batch.

    A plain literal (`timestamp_micros(1733...)`) is inlined into the generated Java: every batch
    then compiled its own code for each table's write — ~10 classes a batch, 300 a minute at a 2 s
    trigger, each a Janino compile on the batch's clock and a class loader in the metaspace until
    a full GC. A string literal is passed to generated code by reference, not inlined, and
    concatenating it with an empty string derived from `spark_partition_id()` (nondeterministic)
    keeps the optimizer from folding it back into a literal: the code is compiled once.
    """
    micros = int(at.timestamp() * 1_000_000)
    keep_unfolded = "left(CAST(spark_partition_id() AS STRING), 0)"  # '' in every row
    return f"timestamp_micros(CAST(concat('{micros}', {keep_unfolded}) AS BIGINT))"


def table_projection(table: str, ingested_at: datetime) -> list[str]:
    """SQL selecting one table's stored columns (and the partition column) from routed rows."""
    ingested = f"{batch_timestamp_sql(ingested_at)} AS ingested_at"
    if table == QUARANTINE_TABLE:
        cols = [ingested if n == "ingested_at" else n for n, _ in QUARANTINE_COLUMNS]
        return [*cols, PARTITION_COLUMN]
    record = RECORDS_BY_NAME[table.removesuffix("_data")]
    own = [f"`{table}__{f.name}` AS `{f.name}`" for f in record.fields]
    lineage = [ingested if n == "ingested_at" else n for n, _ in LINEAGE_COLUMNS]
    return [*own, *lineage, PARTITION_COLUMN]
