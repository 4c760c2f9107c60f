"""Warehouses of the previous plain-Parquet layout: found at start, imported into the Iceberg tables.

Why: before the tables moved to Iceberg the job wrote `<warehouse>/<table>/event_date=D/*.parquet`
(and `<table>/_staging/`, `<warehouse>/_manifests/` for its own commit protocol). The Iceberg
tables live at `<warehouse>/<namespace>/<table>` and see only files their snapshots name, so an
old warehouse would look empty to every reader while its rows sat beside the new tables. Rather
than break silently, `ensure_tables` (the job's start, `movesmart catalog ensure`, Dagster's
catalog asset) refuses while such folders exist, naming them and `movesmart tables import-legacy`.

Why a rewrite and not Iceberg's `add_files`: the old files do not hold `event_date` (Spark wrote it
only as the folder name), and `add_files` cannot give a column a value per file, so the rows
would read `event_date` as null. The import reads each day folder with Spark (the table's stored
columns, by name), sets `event_date` from the folder and appends it: one snapshot per table and
day, carrying `movesmart.legacy-import = <table>/event_date=D` in its summary. A re-run skips a day
whose snapshot is there, so a crash between the commit and the move never doubles a row. Imported
day folders (and the old staging and manifests) are moved under `<warehouse>/_legacy/`, a name
every reader skips, to be deleted once the tables have been checked.

In Glue mode the old job also registered each table in Glue as a Hive table of the same name; the
import drops those definitions (Glue metadata only: the files are untouched) so that the Iceberg
tables can take the names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from movesmart_dagster.schemas import ALL_TABLES, PARTITION_COLUMN
from movesmart_dagster.settings import Settings
from movesmart_dagster.tables.catalog import CatalogError

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyspark.sql import SparkSession

IMPORT_COMMAND = "movesmart tables import-legacy"
IMPORT_PROPERTY = "movesmart.legacy-import"  # snapshot summary key: "<table>/event_date=<day>"
LEGACY_DIR = "_legacy"  # imported folders go here; `_` hides it from every reader
MANIFESTS_DIR = "_manifests"  # the old commit protocol's manifests
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder name for a null event_date
_DAY_PREFIX = f"{PARTITION_COLUMN}="


class LegacyWarehouseError(CatalogError):
    """The warehouse holds tables of the old layout; the message names them and the import command."""


@dataclass(frozen=True)
class LegacyDay:
    """One old day folder: `<warehouse>/<table>/event_date=<day>/` and its visible data files."""

    table: str
    folder: str  # in the warehouse filesystem's terms (a path, or bucket/key on S3)
    day: date | None  # None: Spark's folder for rows without an event_date
    files: tuple[str, ...]
    bytes: int

    @property
    def marker(self) -> str:
        """What the import's snapshot records, so that a re-run finds it."""
        return f"{self.table}/{self.folder.rsplit('/', 1)[-1]}"

    @property
    def label(self) -> str:
        return f"{self.table} {self.day.isoformat() if self.day else 'null'}"


@dataclass(frozen=True)
class ImportedDay:
    day: LegacyDay
    rows: int
    snapshot_id: int | None
    skipped: bool  # an earlier run had committed it (only its folder was moved now)

    def describe(self) -> str:
        files = count_of(len(self.day.files), "file")
        if self.skipped:
            return f"{self.day.label}: already imported (snapshot {self.snapshot_id}), {files} moved"
        return (
            f"{self.day.label}: {files}, {count_of(self.rows, 'row')} imported (snapshot {self.snapshot_id})"
        )


# --- where things are ------------------------------------------------------------------------


def _filesystem(settings: Settings) -> tuple[pafs.FileSystem, str]:
    from movesmart_dagster.tables.warehouse import arrow_filesystem

    return arrow_filesystem(settings)


def _uri(settings: Settings, path: str) -> str:
    """A warehouse path as Spark reads it (`s3a://bucket/key` or `file:///path`)."""
    return f"s3a://{path}" if settings.warehouse_is_s3 else f"file://{path}"


def _shown(settings: Settings, path: str) -> str:
    """A path as a person would look for it (the s3a:// URI, or the local path)."""
    return _uri(settings, path) if settings.warehouse_is_s3 else path


def _visible(name: str) -> bool:
    return not name.startswith(("_", "."))


def _day_of(settings: Settings, folder: str) -> date | None:
    value = folder.rsplit("/", 1)[-1][len(_DAY_PREFIX) :]
    if value == HIVE_NULL_PARTITION:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise LegacyWarehouseError(
            f"{_shown(settings, folder)}: not a day folder the previous layout wrote "
            f"({PARTITION_COLUMN}=YYYY-MM-DD); move it out of the warehouse, then run `{IMPORT_COMMAND}`"
        ) from None


def find_legacy_days(settings: Settings, tables: Sequence[str] = ALL_TABLES) -> list[LegacyDay]:
    """Every old day folder that still holds a data file, by table and day.

    A folder counts when it holds a visible `.parquet` file directly, as the old job's moves left
    them; the old job's `_staging` (failed attempts, never visible) is not data.
    """
    import pyarrow.fs as pafs

    fs, root = _filesystem(settings)
    found: list[LegacyDay] = []
    for table in tables:
        base = f"{root}/{table}"
        try:
            children = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
        except FileNotFoundError:
            continue
        for child in sorted(children, key=lambda info: info.path):
            name = child.path.rsplit("/", 1)[-1]
            if child.type != pafs.FileType.Directory or not name.startswith(_DAY_PREFIX):
                continue
            files = [
                info
                for info in fs.get_file_info(pafs.FileSelector(child.path, allow_not_found=True))
                if info.type == pafs.FileType.File
                and info.path.endswith(".parquet")
                and _visible(info.path.rsplit("/", 1)[-1])
            ]
            if files:
                found.append(
                    LegacyDay(
                        table=table,
                        folder=child.path,
                        day=_day_of(settings, child.path),
                        files=tuple(sorted(f.path for f in files)),
                        bytes=sum(f.size or 0 for f in files),
                    )
                )
    return found


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def legacy_message(settings: Settings, days: Sequence[LegacyDay]) -> str:
    """Why the start is refused, where the old data is, and the command that imports it."""
    _, root = _filesystem(settings)
    by_table: dict[str, list[LegacyDay]] = {}
    for d in days:
        by_table.setdefault(d.table, []).append(d)
    tables = ", ".join(
        f"{t} ({count_of(len(ds), 'day')}, {count_of(sum(len(d.files) for d in ds), 'file')})"
        for t, ds in by_table.items()
    )
    return (
        f"the warehouse {_shown(settings, root)} holds tables in the previous plain-Parquet layout "
        f"({_shown(settings, root)}/<table>/{PARTITION_COLUMN}=YYYY-MM-DD/): {tables}. "
        "The Iceberg tables do not read those folders, so their rows would be missing from every "
        f"reader. Import them into the Iceberg tables first: `{IMPORT_COMMAND}` "
        f"(see what it would do with `{IMPORT_COMMAND} --dry-run`); it moves the imported folders "
        f"to {_shown(settings, root)}/{LEGACY_DIR}/"
    )


def check_no_legacy(settings: Settings) -> None:
    """Raise LegacyWarehouseError when the warehouse still holds old-layout day folders."""
    days = find_legacy_days(settings)
    if days:
        raise LegacyWarehouseError(legacy_message(settings, days))


# --- Glue: the old Hive definitions of the same names -----------------------------------------


def old_glue_tables(settings: Settings, tables: Sequence[str] = ALL_TABLES) -> list[str]:
    """Tables of the Glue database that are not Iceberg tables (the old job's Hive tables)."""
    if settings.catalog != "glue":
        return []
    glue = _glue_client(settings)
    found = []
    for table in tables:
        try:
            params = glue.get_table(DatabaseName=settings.glue_database, Name=table)["Table"].get(
                "Parameters", {}
            )
        except glue.exceptions.EntityNotFoundException:
            continue
        if params.get("table_type", "").upper() != "ICEBERG":
            found.append(table)
    return found


def _glue_client(settings: Settings) -> Any:
    import boto3

    kwargs: dict[str, Any] = {"region_name": settings.aws_region}
    if settings.s3_endpoint:  # moto serves Glue on the S3 endpoint's port
        kwargs["endpoint_url"] = settings.s3_endpoint
    return boto3.client("glue", **kwargs)  # credentials: the default provider chain


def drop_old_glue_tables(settings: Settings, tables: Sequence[str]) -> None:
    glue = _glue_client(settings)
    for table in tables:
        glue.delete_table(DatabaseName=settings.glue_database, Name=table)


# --- the import ----------------------------------------------------------------------------------


def _imported_markers(table: Any) -> dict[str, tuple[int, int]]:
    """{marker: (snapshot id, rows added)} of the import snapshots a table holds."""
    out: dict[str, tuple[int, int]] = {}
    for snap in table.snapshots():
        summary = snap.summary.additional_properties if snap.summary else {}
        marker = summary.get(IMPORT_PROPERTY)
        if marker:
            out[marker] = (snap.snapshot_id, int(summary.get("added-records", 0)))
    return out


def _append_day(spark: SparkSession, settings: Settings, day: LegacyDay) -> None:
    """One Spark append of a day folder's files, `event_date` set from the folder."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from movesmart_dagster.schemas import spark_table_schema
    from movesmart_dagster.tables.catalog import spark_table

    stored = [f for f in spark_table_schema(day.table).fields if f.name != PARTITION_COLUMN]
    # by name, as the old job wrote them; a column missing from an older file reads as null
    rows = spark.read.schema(StructType(stored)).parquet(*(_uri(settings, f) for f in day.files))
    event_date = F.lit(day.day.isoformat() if day.day else None).cast("date")
    (
        rows.select(*(F.col(f"`{f.name}`") for f in stored), event_date.alias(PARTITION_COLUMN))
        .writeTo(spark_table(settings, day.table))
        .option(f"snapshot-property.{IMPORT_PROPERTY}", day.marker)
        .append()
    )


def _move_tree(fs: pafs.FileSystem, src: str, dst: str) -> None:
    """Move every file below `src` to the same place below `dst`, then remove `src`.

    File by file: S3 has no folder rename, and a re-run after a crash finishes a half-done move.
    """
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(src, recursive=True, allow_not_found=True))
    for info in infos:
        if info.type == pafs.FileType.File:
            target = f"{dst}{info.path[len(src) :]}"
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            fs.move(info.path, target)
    if fs.get_file_info(src).type == pafs.FileType.Directory:
        fs.delete_dir(src)


def _legacy_target(root: str, path: str) -> str:
    return f"{root}/{LEGACY_DIR}{path[len(root) :]}"


def import_legacy(
    settings: Settings, spark: Callable[[], SparkSession], tables: Sequence[str] = ALL_TABLES
) -> list[ImportedDay]:
    """Append every old day folder of the tables to its Iceberg table, once; move the folders away.

    `spark` gives the session, asked for only when a day is to be appended (a re-run that only
    finishes moves, or drops old Glue definitions, starts no JVM).

    The tables are created when missing (their old Hive definitions in Glue dropped first). After
    the last day of a table, what else is left of its old folder (`_staging`) moves too; after
    all six, the old manifests.
    """
    import pyarrow.fs as pafs

    from movesmart_dagster.tables.catalog import ensure_namespace, ensure_table, load_catalog, load_table

    drop_old_glue_tables(settings, old_glue_tables(settings, tables))
    catalog = load_catalog(settings)
    ensure_namespace(catalog, settings)
    for table in tables:  # only these: with --table, other old Glue definitions stay for later
        ensure_table(catalog, settings, table)
    fs, root = _filesystem(settings)
    done: list[ImportedDay] = []
    for table in tables:
        days = find_legacy_days(settings, [table])
        for day in days:
            markers = _imported_markers(load_table(settings, table, catalog))
            skipped = day.marker in markers
            if not skipped:
                _append_day(spark(), settings, day)
                markers = _imported_markers(load_table(settings, table, catalog))
            snapshot_id, rows = markers[day.marker]
            _move_tree(fs, day.folder, _legacy_target(root, day.folder))
            done.append(ImportedDay(day, rows, snapshot_id, skipped))
        leftover = f"{root}/{table}"
        if fs.get_file_info(leftover).type == pafs.FileType.Directory:
            _move_tree(fs, leftover, _legacy_target(root, leftover))
    if set(tables) == set(ALL_TABLES):
        manifests = f"{root}/{MANIFESTS_DIR}"
        if fs.get_file_info(manifests).type == pafs.FileType.Directory:
            _move_tree(fs, manifests, _legacy_target(root, manifests))
    return done


def footer_rows(settings: Settings, day: LegacyDay) -> int:
    """Rows of a day folder by its Parquet footers (what a dry run reports)."""
    import pyarrow.parquet as pq

    fs, _ = _filesystem(settings)
    total = 0
    for path in day.files:
        with fs.open_input_file(path) as fh:
            total += pq.read_metadata(fh).num_rows
    return total
