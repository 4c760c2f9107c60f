"""What a reader of a table must read: the data files of its current Iceberg snapshot.

Why a scan plan and not a listing: a table's folder also holds files of failed attempts (never
part of a snapshot until maintenance removes them) and, after a compaction, the replaced files of
older snapshots. Only the catalog knows which files make the current snapshot; pyiceberg's scan
plan lists exactly those, and DuckDB reads them with its built-in Parquet reader (DuckDB's own
iceberg and httpfs extensions would be downloaded at run time). On an `s3://` warehouse the files
are read with pyarrow's S3 client (`endpoint_override` for the local endpoint or MinIO).

The tables only ever receive appends (no delete files), so the plan's data files are the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from movesmart_dagster.settings import Settings
from movesmart_dagster.tables.catalog import identifier, load_catalog, sqlite_path

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Snapshot:
    """One table's current snapshot as a reader needs it."""

    table: str
    snapshot_id: int | None
    files: list[str]  # data file URIs (file:///..., s3://...)
    columns: set[str]  # top-level columns present in at least one file
    days: list[str]  # partition days (YYYY-MM-DD) holding rows, sorted


def catalog_exists(settings: Settings) -> bool:
    """False for a local catalog that was never created (no job ran yet): readers then see empty
    tables instead of creating a catalog."""
    return settings.catalog != "local" or sqlite_path(settings).exists()


def reader_catalog(settings: Settings) -> Catalog | None:
    return load_catalog(settings) if catalog_exists(settings) else None


def load(settings: Settings, table: str, catalog: Catalog | None = None) -> Table | None:
    """The table, or None when it does not exist yet."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    catalog = catalog or reader_catalog(settings)
    if catalog is None:
        return None
    try:
        return catalog.load_table(identifier(settings, table))
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def day_filter(table: str, day: str) -> object:
    """The row filter of one day partition: the event time (quarantine: the Kafka timestamp)
    within the UTC day. Iceberg projects it onto the `day(...)` partition transform, so a scan
    plan with it reads only that day's manifests entries and files, however long the history."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from movesmart_dagster.tables.catalog import event_time_column

    start = date.fromisoformat(day)
    column = event_time_column(table)
    return And(
        GreaterThanOrEqual(column, f"{start.isoformat()}T00:00:00+00:00"),
        LessThan(column, f"{(start + timedelta(days=1)).isoformat()}T00:00:00+00:00"),
    )


def current(
    settings: Settings, table: str, catalog: Catalog | None = None, day: str | None = None
) -> Snapshot:
    """The files, columns and days of the table's current snapshot (empty when none); with
    `day`, only the files of that day's partition."""
    iceberg = load(settings, table, catalog)
    snap = iceberg.current_snapshot() if iceberg is not None else None
    if iceberg is None or snap is None:
        return Snapshot(table, None, [], set(), [])
    schema = iceberg.schema()
    files: list[str] = []
    field_ids: set[int] = set()
    days: set[int] = set()
    scan = iceberg.scan(snapshot_id=snap.snapshot_id)
    if day is not None:
        scan = scan.filter(day_filter(table, day))
    for task in scan.plan_files():
        if task.delete_files:
            raise RuntimeError(
                f"{table}: delete files in snapshot {snap.snapshot_id}; the tables are append-only"
            )
        files.append(task.file.file_path)
        field_ids.update((task.file.value_counts or {}).keys())
        day = task.file.partition[0] if len(task.file.partition) else None
        if day is not None:
            days.add(int(day))
    top = {f.name for f in schema.fields if f.field_id in field_ids or _has_child(f, field_ids)}
    return Snapshot(
        table,
        snap.snapshot_id,
        sorted(files),
        top,
        sorted((_EPOCH + timedelta(days=d)).isoformat() for d in days),
    )


def _has_child(field: object, field_ids: set[int]) -> bool:
    from pyiceberg.types import StructType

    ftype = getattr(field, "field_type", None)
    return isinstance(ftype, StructType) and any(c.field_id in field_ids for c in ftype.fields)


def list_files(settings: Settings, table: str) -> list[str]:
    """Data files of the table's current snapshot (URIs), sorted."""
    return current(settings, table).files


def list_partitions(settings: Settings, table: str) -> list[str]:
    """The days (YYYY-MM-DD, the `event_date` values) holding rows in the current snapshot."""
    return current(settings, table).days


def local_path(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def arrow_filesystem(settings: Settings) -> pafs.FileSystem:
    """pyarrow's filesystem for the warehouse's files (S3 with the endpoint, or local)."""
    import pyarrow.fs as pafs

    if settings.warehouse_is_s3:
        kwargs: dict[str, object] = {"region": settings.aws_region}
        if settings.s3_endpoint:
            endpoint = urlparse(settings.s3_endpoint)
            kwargs["endpoint_override"] = endpoint.netloc
            kwargs["scheme"] = endpoint.scheme
        # credentials: the default provider chain (environment, profile, instance role)
        return pafs.S3FileSystem(**kwargs)
    return pafs.LocalFileSystem()


def arrow_path(uri: str) -> str:
    """A file URI in pyarrow filesystem terms: `bucket/key` on S3, the path locally."""
    parsed = urlparse(uri)
    if parsed.scheme in ("s3", "s3a"):
        return f"{parsed.netloc}{parsed.path}"
    return local_path(uri)
