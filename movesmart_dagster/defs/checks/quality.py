"""Data-quality rules over the stored tables, computed by DuckDB straight from the Parquet files.

Why DuckDB and not Spark: a check is a handful of aggregates over files; DuckDB answers in
well under a second without a JVM, so checks can run often. The same functions serve the
table asset checks (whole table) and the analytics gate (one `event_date`), so a day with
bad rows never reaches an analytics partition.

Rules (per record table; ranges come from `schemas`, so they match the data contract):
- no null ids; no duplicate ids;
- coordinates within latitude -90..90, longitude -180..180 (tables with `location`);
- speed within its declared range (tables with `speed`);
- quarantine share (quarantined / all records of a topic) at most MOVESMART_QUARANTINE_MAX_SHARE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from movesmart_dagster.schemas import LOCATION_FIELDS, QUARANTINE_TABLE, RECORDS_BY_NAME, TABLES


@dataclass
class RuleResult:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _record(table: str):
    return RECORDS_BY_NAME[table.removesuffix("_data")]


def rule_names(table: str) -> list[str]:
    if table == QUARANTINE_TABLE:
        return ["quarantine_share_below_threshold"]
    names = ["no_null_ids", "no_duplicate_ids"]
    fields = _record(table).field_names
    if "location" in fields:
        names.append("coordinates_in_range")
    if "speed" in fields:
        names.append("speed_in_range")
    return names


def has_view(con: Any, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_name = ? and table_schema = 'main'",
            [name],
        ).fetchone()[0]
    )


def _where(event_date: str | None) -> tuple[str, list[Any]]:
    return ("where cast(event_date as varchar) = ?", [event_date]) if event_date else ("", [])


def table_metrics(con: Any, table: str, event_date: str | None = None) -> dict[str, int]:
    """One scan: rows, null/duplicate ids, out-of-range coordinates and speeds."""
    if not has_view(con, table):
        return {"rows": 0, "null_ids": 0, "duplicate_ids": 0, "bad_coordinates": 0, "bad_speed": 0}
    record = _record(table)
    lat, lon = LOCATION_FIELDS
    parts = [
        "count(*) as rows",
        "count(*) filter (where id is null) as null_ids",
        "count(id) - count(distinct id) as duplicate_ids",
    ]
    if "location" in record.field_names:
        parts.append(
            "count(*) filter (where location.latitude not between "
            f"{lat.minimum} and {lat.maximum} or location.longitude not between {lon.minimum} and {lon.maximum}"
            ") as bad_coordinates"
        )
    else:
        parts.append("0 as bad_coordinates")
    if "speed" in record.field_names:
        speed = record.field("speed")
        parts.append(
            f"count(*) filter (where speed < {speed.minimum} or speed > {speed.maximum}) as bad_speed"
        )
    else:
        parts.append("0 as bad_speed")
    where, params = _where(event_date)
    row = con.execute(f'select {", ".join(parts)} from "{table}" {where}', params).fetchone()
    keys = ["rows", "null_ids", "duplicate_ids", "bad_coordinates", "bad_speed"]
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def quarantine_by_topic(con: Any, event_date: str | None = None) -> dict[str, int]:
    if not has_view(con, QUARANTINE_TABLE):
        return {}
    where, params = _where(event_date)
    rows = con.execute(
        f"select kafka_topic, count(*) from {QUARANTINE_TABLE} {where} group by kafka_topic", params
    ).fetchall()
    return {str(t): int(n) for t, n in rows}


def evaluate_table(con: Any, table: str, event_date: str | None = None) -> list[RuleResult]:
    scope = f"event_date={event_date}" if event_date else "all partitions"
    m = table_metrics(con, table, event_date)
    meta = {"rows": m["rows"], "scope": scope}
    out = [
        RuleResult(
            "no_null_ids",
            m["null_ids"] == 0,
            f"{m['null_ids']} null ids in {m['rows']} rows ({scope})",
            {**meta, "null_ids": m["null_ids"]},
        ),
        RuleResult(
            "no_duplicate_ids",
            m["duplicate_ids"] == 0,
            f"{m['duplicate_ids']} duplicate ids in {m['rows']} rows ({scope})",
            {**meta, "duplicate_ids": m["duplicate_ids"]},
        ),
    ]
    names = rule_names(table)
    if "coordinates_in_range" in names:
        out.append(
            RuleResult(
                "coordinates_in_range",
                m["bad_coordinates"] == 0,
                f"{m['bad_coordinates']} rows outside lat -90..90 / lon -180..180 ({scope})",
                {**meta, "out_of_range": m["bad_coordinates"]},
            )
        )
    if "speed_in_range" in names:
        speed = _record(table).field("speed")
        out.append(
            RuleResult(
                "speed_in_range",
                m["bad_speed"] == 0,
                f"{m['bad_speed']} rows with speed outside {speed.minimum:g}..{speed.maximum:g} ({scope})",
                {**meta, "out_of_range": m["bad_speed"]},
            )
        )
    return out


def evaluate_quarantine(con: Any, max_share: float, event_date: str | None = None) -> RuleResult:
    """Share of quarantined records, overall and per topic; fails if any topic exceeds `max_share`."""
    quarantined = quarantine_by_topic(con, event_date)
    shares: dict[str, float] = {}
    total_q = total_all = 0
    for table in TABLES:
        valid = table_metrics(con, table, event_date)["rows"]
        q = quarantined.get(table, 0)
        total_q += q
        total_all += q + valid
        if q + valid:
            shares[table] = q / (q + valid)
    worst = max(shares.items(), key=lambda kv: kv[1], default=("-", 0.0))
    overall = total_q / total_all if total_all else 0.0
    return RuleResult(
        "quarantine_share_below_threshold",
        worst[1] <= max_share,
        f"worst topic {worst[0]} at {worst[1]:.2%} quarantined (limit {max_share:.2%}); overall {overall:.2%}",
        {
            "overall_share": round(overall, 6),
            "max_share": max_share,
            "quarantined": total_q,
            "records": total_all,
            "share_by_topic": {k: round(v, 6) for k, v in sorted(shares.items())},
        },
    )


def gate(con: Any, tables: list[str], event_date: str, max_share: float) -> list[RuleResult]:
    """The failing rules for one day of the given tables (empty: safe to compute analytics)."""
    failed = [r for t in tables for r in evaluate_table(con, t, event_date) if not r.passed]
    q = evaluate_quarantine(con, max_share, event_date)
    return [*failed, q] if not q.passed else failed
