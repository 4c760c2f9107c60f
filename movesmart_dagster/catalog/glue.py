"""The Glue Data Catalog kept current by the platform itself — no crawler.

Why not a crawler: crawlers guess schemas (the seed's drifted from the producers), run on a
timer (new days appear late) and catalogue whatever they find, including Spark's
`_spark_metadata`, staging folders and checkpoints. Here the table definition is a function
of `schemas` (Parquet SerDe, partitioned by `event_date`), and partitions are registered
from the warehouse listing: only `event_date=...` folders, never a name starting with `_`
or `.` (the names Hive, Athena and Redshift Spectrum skip too).

Every call is idempotent: a second sync adds nothing and a schema change updates the
table in place. The boto3 client is passed in (or built from the settings, pointing at the
local endpoint when `MOVESMART_S3_ENDPOINT` is set: moto serves Glue on the same port).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from movesmart_dagster import schemas
from movesmart_dagster.settings import Settings

PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
BATCH_SIZE = 100  # the most partitions batch_create_partition accepts per call

_PARTITION_PREFIX = f"{schemas.PARTITION_COLUMN}="
# Glue names: lowercase letters, digits, underscore (Glue lowercases whatever it is sent).
_GLUE_NAME = re.compile(r"^[a-z0-9_]{1,255}$")


class CatalogError(RuntimeError):
    """A catalog call failed in a way a retry will not fix; the message says what to change."""


# --- locations ---------------------------------------------------------------------------


def glue_location(uri: str) -> str:
    """The location string Glue and Redshift Spectrum expect: `s3://`, never `s3a://`."""
    if uri.startswith("s3a://"):
        return "s3://" + uri[len("s3a://") :]
    return uri


def table_location(settings: Settings, table: str) -> str:
    """Where a table's Parquet files live, as Glue should record it (trailing slash)."""
    return glue_location(f"{settings.warehouse}/{table}/")


def partition_location(location: str, value: str) -> str:
    return f"{location.rstrip('/')}/{_PARTITION_PREFIX}{value}/"


def _visible(name: str) -> bool:
    """Hive's rule: names starting with `_` or `.` are metadata, staging or checkpoints."""
    return bool(name) and not name.startswith(("_", "."))


def _partition_value(dirname: str) -> str | None:
    if not _visible(dirname) or not dirname.startswith(_PARTITION_PREFIX):
        return None
    value = unquote(dirname[len(_PARTITION_PREFIX) :])
    return value or None


def _visible_path(relative: str) -> bool:
    """True when no component of a path below a partition folder is hidden."""
    parts = [p for p in relative.split("/") if p]
    return bool(parts) and all(_visible(p) for p in parts)


def discover_partitions(
    settings: Settings,
    table: str,
    s3_client: Any | None = None,
    known: Collection[str] = (),
) -> list[str]:
    """The `event_date` values of a table's partition folders in the warehouse, sorted.

    A folder counts once it holds a visible data file (a file none of whose path parts
    below the folder starts with `_` or `.`), so a partition holding only a failed batch's
    `_temporary` files is not catalogued. `_spark_metadata`, `_staging`, `_checkpoints` and
    dot-folders are never returned. `file://` warehouses are read with pathlib, `s3a://`
    ones with `list_objects_v2(Delimiter="/")`; values in `known` (already registered)
    skip the data-file check, so a steady-state sync costs one listing per table.
    """
    if not _visible(table):
        raise CatalogError(f"refusing to catalogue hidden table folder {table!r}")
    root = f"{settings.warehouse}/{table}"
    parsed = urlparse(root)
    values: set[str] = set()
    if parsed.scheme == "file":
        base = Path(unquote(parsed.path))
        if not base.is_dir():
            return []
        for child in base.iterdir():
            value = _partition_value(child.name)
            if not value or not child.is_dir():
                continue
            if value in known or any(
                f.is_file() and _visible_path(f.relative_to(child).as_posix()) for f in child.rglob("*")
            ):
                values.add(value)
    elif parsed.scheme in ("s3a", "s3"):
        client = s3_client or s3_client_from_settings(settings)
        bucket = parsed.netloc
        prefix = parsed.path.strip("/") + "/" if parsed.path.strip("/") else ""
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                folder = common["Prefix"]
                value = _partition_value(folder[len(prefix) :].rstrip("/"))
                if value and (value in known or _s3_has_data(client, bucket, folder)):
                    values.add(value)
    else:  # settings validation makes this unreachable; keep the message for direct callers
        raise CatalogError(f"unsupported warehouse scheme in {root!r}")
    return sorted(values)


def _s3_has_data(client: Any, bucket: str, folder: str) -> bool:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=folder):
        if any(_visible_path(obj["Key"][len(folder) :]) for obj in page.get("Contents", [])):
            return True
    return False


# --- clients -----------------------------------------------------------------------------


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"region_name": settings.aws_region}
    if settings.s3_endpoint:
        kwargs["endpoint_url"] = settings.s3_endpoint
    return kwargs


def s3_client_from_settings(settings: Settings) -> Any:
    """A boto3 S3 client; credentials from the default provider chain, never from us."""
    import boto3

    return boto3.client("s3", **_client_kwargs(settings))


# --- the catalog -------------------------------------------------------------------------


def _storage_descriptor(table: str, location: str) -> dict[str, Any]:
    return {
        "Columns": schemas.glue_columns(table),
        "Location": location,
        "InputFormat": PARQUET_INPUT_FORMAT,
        "OutputFormat": PARQUET_OUTPUT_FORMAT,
        "Compressed": False,
        "SerdeInfo": {
            "SerializationLibrary": PARQUET_SERDE,
            "Parameters": {"serialization.format": "1"},
        },
        "StoredAsSubDirectories": False,
    }


def table_input(table: str, location: str) -> dict[str, Any]:
    """The complete Glue `TableInput` of one Move Smart table (a pure function of schemas)."""
    return {
        "Name": table,
        "Description": f"Move Smart {table}: Parquet written by the streaming job",
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "has_encrypted_data": "false"},
        "StorageDescriptor": _storage_descriptor(table, location),
        "PartitionKeys": list(schemas.GLUE_PARTITION_KEYS),
    }


def _shape(columns: list[dict[str, Any]]) -> list[tuple[str, str]]:
    # Glue lowercases names and may echo extra keys (Comment, Parameters): compare name+type.
    return [(c["Name"].lower(), c["Type"].lower()) for c in columns]


def _check_name(kind: str, name: str) -> None:
    if not _GLUE_NAME.match(name):
        raise CatalogError(f"invalid Glue {kind} name {name!r}: use lowercase letters, digits and _")


class GlueCatalog:
    """Database, tables and partitions of Move Smart in the Glue Data Catalog."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> GlueCatalog:
        import boto3

        return cls(boto3.client("glue", **_client_kwargs(settings)))

    def ensure_database(self, name: str) -> bool:
        """Create the database if missing; True when it was created."""
        _check_name("database", name)
        try:
            self.client.get_database(Name=name)
            return False
        except self.client.exceptions.EntityNotFoundException:
            pass
        try:
            self.client.create_database(
                DatabaseInput={"Name": name, "Description": "Move Smart smart-city tables"}
            )
        except self.client.exceptions.AlreadyExistsException:
            return False  # created concurrently: same outcome
        return True

    def ensure_table(self, database: str, table: str, location: str) -> str:
        """Create or update a table; returns "created", "updated" or "unchanged"."""
        _check_name("table", table)
        wanted = table_input(table, glue_location(location))
        try:
            current = self.client.get_table(DatabaseName=database, Name=table)["Table"]
        except self.client.exceptions.EntityNotFoundException:
            try:
                self.client.create_table(DatabaseName=database, TableInput=wanted)
                return "created"
            except self.client.exceptions.AlreadyExistsException:
                current = self.client.get_table(DatabaseName=database, Name=table)["Table"]
        if self._same(current, wanted):
            return "unchanged"
        self.client.update_table(DatabaseName=database, TableInput=wanted)
        return "updated"

    @staticmethod
    def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
        sd, want_sd = current.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
        return (
            _shape(sd.get("Columns", [])) == _shape(want_sd["Columns"])
            and _shape(current.get("PartitionKeys", [])) == _shape(wanted["PartitionKeys"])
            and sd.get("Location") == want_sd["Location"]
            and sd.get("InputFormat") == want_sd["InputFormat"]
            and sd.get("SerdeInfo", {}).get("SerializationLibrary") == PARQUET_SERDE
            and current.get("TableType") == "EXTERNAL_TABLE"
            and current.get("Parameters", {}).get("classification") == "parquet"
        )

    def list_partitions(self, database: str, table: str) -> list[str]:
        """The registered `event_date` values of a table, sorted."""
        values: list[str] = []
        paginator = self.client.get_paginator("get_partitions")
        for page in paginator.paginate(DatabaseName=database, TableName=table):
            values.extend(p["Values"][0] for p in page.get("Partitions", []))
        return sorted(values)

    def sync_partitions(
        self, database: str, table: str, location: str, partition_values: list[str]
    ) -> list[str]:
        """Register the partitions not yet in Glue; returns the values it added, sorted."""
        location = glue_location(location)
        existing = set(self.list_partitions(database, table))
        missing = sorted({v for v in partition_values if v and v not in existing})
        added: list[str] = []
        for start in range(0, len(missing), BATCH_SIZE):
            chunk = missing[start : start + BATCH_SIZE]
            sd = _storage_descriptor(table, location)
            inputs = [
                {
                    "Values": [value],
                    "StorageDescriptor": {**sd, "Location": partition_location(location, value)},
                    "Parameters": {"classification": "parquet"},
                }
                for value in chunk
            ]
            response = self.client.batch_create_partition(
                DatabaseName=database, TableName=table, PartitionInputList=inputs
            )
            failed: set[str] = set()
            for error in response.get("Errors", []):
                value = error.get("PartitionValues", [""])[0]
                code = error.get("ErrorDetail", {}).get("ErrorCode", "")
                if code != "AlreadyExistsException":  # a concurrent sync added it: fine
                    raise CatalogError(
                        f"Glue refused partition {table}/{_PARTITION_PREFIX}{value}: "
                        f"{code} {error.get('ErrorDetail', {}).get('ErrorMessage', '')}".strip()
                    )
                failed.add(value)
            added.extend(v for v in chunk if v not in failed)
        return added

    def sync_table(
        self, settings: Settings, table: str, s3_client: Any | None = None
    ) -> tuple[str, list[str]]:
        """Database, table and partitions of one table from the warehouse listing."""
        database = settings.glue_database
        self.ensure_database(database)
        location = table_location(settings, table)
        state = self.ensure_table(database, table, location)
        known = self.list_partitions(database, table)
        found = discover_partitions(settings, table, s3_client, known=set(known))
        added = self.sync_partitions(database, table, location, found)
        return state, added


def sync_catalog(
    settings: Settings,
    catalog: GlueCatalog | None = None,
    tables: tuple[str, ...] = schemas.ALL_TABLES,
    s3_client: Any | None = None,
) -> dict[str, dict[str, Any]]:
    """Sync every table; per table: {"table": created|updated|unchanged, "added": [...]}."""
    catalog = catalog or GlueCatalog.from_settings(settings)
    if settings.warehouse_is_s3 and s3_client is None:
        s3_client = s3_client_from_settings(settings)
    result: dict[str, dict[str, Any]] = {}
    for table in tables:
        state, added = catalog.sync_table(settings, table, s3_client)
        result[table] = {"table": state, "added": added}
    return result
