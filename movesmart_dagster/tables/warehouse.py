"""Where a table's files are, and which of them a reader must see.

Layout (written by the streaming job): `<warehouse>/<table>/event_date=YYYY-MM-DD/*.parquet`.
Anything whose path has a component starting with `_` or `.` (staging, manifests, Spark
checksums) is not data — Hive, Athena, Redshift Spectrum skip it, and so do we.

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


def table_uri(settings: Settings, table: str) -> str:
    """`file:///.../<table>` or `s3a://bucket/prefix/<table>`."""
    return f"{settings.warehouse}/{table}"


def arrow_filesystem(settings: Settings) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem for the warehouse and the warehouse root in its terms."""
    import pyarrow.fs as pafs

    uri = urlparse(settings.warehouse)
    if settings.warehouse_is_s3:
        kwargs: dict[str, object] = {"region": settings.aws_region}
        if settings.s3_endpoint:
            endpoint = urlparse(settings.s3_endpoint)
            kwargs["endpoint_override"] = endpoint.netloc
            kwargs["scheme"] = endpoint.scheme
        # credentials: the default provider chain (environment, profile, instance role)
        return pafs.S3FileSystem(**kwargs), f"{uri.netloc}{uri.path}".rstrip("/")
    return pafs.LocalFileSystem(), uri.path.rstrip("/")


def _visible(rel: str) -> bool:
    return not any(part.startswith(("_", ".")) for part in rel.split("/"))


def list_files(settings: Settings, table: str) -> list[str]:
    """Data files of a table a reader must see (paths in the filesystem's terms), sorted."""
    import pyarrow.fs as pafs

    fs, root = arrow_filesystem(settings)
    base = f"{root}/{table}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
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


def list_partitions(settings: Settings, table: str) -> list[str]:
    """The `event_date` values (YYYY-MM-DD) that hold at least one data file."""
    dates = {p.rsplit("/", 2)[-2].split("=", 1)[1] for p in list_files(settings, table)}
    return sorted(dates)


def local_root(settings: Settings) -> str:
    """The local warehouse folder (only for file:// warehouses)."""
    return os.path.abspath(urlparse(settings.warehouse).path)
