"""The warehouse outside the Iceberg tables: its existence, and the daily analytics' Parquet files.

The six tables are Iceberg tables whose files only the catalog's scan plan names (`scan.py`).
The daily analytics are plain Parquet written by Spark, one folder per day, replaced whole on a
re-run: `<warehouse>/analytics/<name>/event_date=YYYY-MM-DD/*.parquet`. Anything whose path has a
component starting with `_` or `.` (Spark's `_SUCCESS`, checksums) is not data — Hive, Athena,
Redshift Spectrum skip it, and so do we.

Local warehouses are plain folders; s3a:// ones are read with pyarrow's own S3 client
(`endpoint_override` for the local endpoint or MinIO), because DuckDB's httpfs extension
would be downloaded at run time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from movesmart_dagster.schemas import PARTITION_COLUMN
from movesmart_dagster.settings import Settings

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def arrow_filesystem(settings: Settings) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem for the warehouse and the warehouse root in its terms."""
    from movesmart_dagster.tables.scan import arrow_filesystem as filesystem

    uri = urlparse(settings.warehouse)
    if settings.warehouse_is_s3:
        return filesystem(settings), f"{uri.netloc}{uri.path}".rstrip("/")
    return filesystem(settings), uri.path.rstrip("/")


def _visible(rel: str) -> bool:
    return not any(part.startswith(("_", ".")) for part in rel.split("/"))


def list_output_files(settings: Settings, location: str, event_date: str | None = None) -> list[str]:
    """Data files of a plain-Parquet output (`analytics/<name>`), in the filesystem's terms, sorted.

    `event_date`: only that day's files (an empty list when the day has none).
    """
    import pyarrow.fs as pafs

    fs, root = arrow_filesystem(settings)
    base = f"{root}/{location}"
    start = f"{base}/{PARTITION_COLUMN}={event_date}" if event_date else base
    try:
        infos = fs.get_file_info(pafs.FileSelector(start, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return []
    out = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(".parquet"):
            continue
        rel = info.path[len(base) + 1 :]
        parts = rel.split("/")
        if len(parts) == 2 and parts[0].startswith(f"{PARTITION_COLUMN}=") and _visible(rel):
            out.append(info.path)
    return sorted(out)


def local_root(settings: Settings) -> str:
    """The local warehouse folder (only for file:// warehouses)."""
    return os.path.abspath(urlparse(settings.warehouse).path)


def warehouse_location(settings: Settings) -> str:
    """The warehouse as a person would look for it: a local folder, or the s3a:// URI."""
    return settings.warehouse if settings.warehouse_is_s3 else local_root(settings)


def warehouse_exists(settings: Settings) -> bool:
    """Whether anything was ever written to the warehouse (its folder or S3 prefix exists).

    A missing warehouse is a wrong `MOVESMART_HOME`/`MOVESMART_WAREHOUSE` far more often than
    a platform that never ran, so readers that answer people (`movesmart query`) say so
    instead of showing empty tables.
    """
    import pyarrow.fs as pafs

    fs, root = arrow_filesystem(settings)
    try:
        return fs.get_file_info(root).type != pafs.FileType.NotFound
    except FileNotFoundError:
        return False
