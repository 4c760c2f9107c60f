"""How the exact pass cuts its rows into chunks the driver can hold.

Why planned from counts: the driver must never collect the values it is about to plan, so
it collects counts per bucket of consecutive offsets of one Kafka partition (each bucket
small enough to fit a chunk alone) and turns runs of buckets into offset-range filters;
fetching a chunk is then a filter over the cached batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from movesmart_dagster.streaming.validation.sql import sql_literal

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def chunk_filters(raw: DataFrame, chunk_rows: int, chunk_bytes: int, cap: int) -> Iterator[str]:
    """SQL filters that split `raw` into chunks of at most `chunk_rows` records and about
    `chunk_bytes` bytes (a single record up to the size cap may exceed it).

    Planned from counts per bucket of consecutive offsets of one Kafka partition, the
    bucket small enough to fit a chunk alone (so the driver collects counts, not values);
    consecutive buckets then join a chunk while it has room.
    """
    from pyspark.sql import functions as F

    bucket = max(1, min(chunk_rows, chunk_bytes // max(1, cap)))
    rows = (
        raw.selectExpr(
            "topic", "partition", f"offset div {bucket} AS b", "offset", "octet_length(value) AS n"
        )
        .groupBy("topic", "partition", "b")
        .agg(F.count("*").alias("count"), F.max("offset").alias("hi"), F.sum("n").alias("bytes"))
        .toArrow()
        .to_pylist()
    )
    rows.sort(key=lambda r: (r["topic"], r["partition"], r["b"]))  # not orderBy: a sampling job
    ranges: dict[tuple[str, int], list[int]] = {}
    n_rows = n_bytes = 0
    for r in rows:
        if ranges and (n_rows + r["count"] > chunk_rows or n_bytes + r["bytes"] > chunk_bytes):
            yield _ranges_filter(ranges)
            ranges, n_rows, n_bytes = {}, 0, 0
        lo = r["b"] * bucket
        span = ranges.setdefault((r["topic"], r["partition"]), [lo, r["hi"]])
        span[1] = r["hi"]
        n_rows += r["count"]
        n_bytes += r["bytes"] or 0
    if ranges:
        yield _ranges_filter(ranges)


def _ranges_filter(ranges: dict[tuple[str, int], list[int]]) -> str:
    return " OR ".join(
        f"(topic = {sql_literal(t)} AND partition = {p} AND offset BETWEEN {lo} AND {hi})"
        for (t, p), (lo, hi) in ranges.items()
    )
