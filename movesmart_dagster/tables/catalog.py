"""The Iceberg catalog of the six tables: one source for its properties, its tables and their schemas.

Why a catalog: the tables are Apache Iceberg tables, and the catalog holds each table's current
metadata pointer. A commit is one atomic swap of that pointer, so every reader (Spark, pyiceberg,
DuckDB through pyiceberg's scan plan, Athena, Redshift over Glue) sees whole snapshots — never a
failed attempt's files, never half a batch.

Two catalogs, one name (`movesmart`), one namespace (`MOVESMART_GLUE_DATABASE`, default `smartcity`):
- `MOVESMART_CATALOG=local` (default): Iceberg's JDBC catalog on a SQLite file,
  `$MOVESMART_HOME/catalog/iceberg.db`. Why SQLite: it is embedded (no server to run), Spark's
  Iceberg runtime reads it through the `sqlite-jdbc` driver, and pyiceberg's `SqlCatalog` reads the
  very same tables (`iceberg_tables`, `iceberg_namespace_properties`, schema V1), so the streaming
  job, `movesmart query` and any pyiceberg client share one catalog without a service. The
  warehouse (`MOVESMART_WAREHOUSE`) may be a local folder or `s3a://` either way.
- `MOVESMART_CATALOG=glue` (AWS mode): Iceberg's Glue catalog; the tables are Glue tables of type
  ICEBERG in the database `MOVESMART_GLUE_DATABASE` — what Athena and Redshift's external schema
  read. The catalog itself registers tables and snapshots: no crawler, no partition registration.

On S3, Spark reads and writes through S3A (Iceberg's HadoopFileIO), with `s3://` mapped to S3A so
that table locations carry the `s3://` scheme Glue, Athena and Redshift expect; pyiceberg reads
them with pyarrow's S3 client. Credentials come from the default provider chain on both sides:
nothing here carries a key.

Tables are created when missing and evolved at job start (`ensure_tables`): a field added in
`schemas.py` is added to the table (metadata only, no rewrite); a field whose type changed
incompatibly, or that disappeared, stops the start with a message naming it. A warehouse still in
the previous plain-Parquet layout stops it too, naming the import command (`legacy.py`).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movesmart_dagster.schemas import (
    ALL_TABLES,
    LOCATION_FIELDS,
    PARTITION_COLUMN,
    QUARANTINE_TABLE,
    RECORDS_BY_NAME,
    columns_for_table,
)
from movesmart_dagster.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.types import IcebergType

CATALOG_NAME = "movesmart"
SPARK_CATALOG_PREFIX = f"spark.sql.catalog.{CATALOG_NAME}"

# double, bigint and timestamp values rarely repeat: Parquet dictionaries off for them (the writer
# fills one per column chunk before it falls back to plain); strings and ints keep theirs
_UNREPEATED_TYPES = ("double", "bigint", "timestamp")

# Written into every table's properties: how the job's appends are laid out.
BASE_TABLE_PROPERTIES: dict[str, str] = {
    "format-version": "2",
    "write.format.default": "parquet",
    "write.parquet.compression-codec": "zstd",
    "write.parquet.compression-level": "1",  # most of zstd's gain at a fraction of level 3's CPU
    # each Spark task holds one Kafka partition's rows of a few days: write them as they come
    # (no shuffle, no sort before an append)
    "write.distribution-mode": "none",
    "write.spark.fanout.enabled": "true",
    # one metadata.json per commit: keep the last 100, delete older ones on commit
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
    "commit.retry.num-retries": "10",
}


class CatalogError(RuntimeError):
    """The catalog cannot serve the tables as schemas.py defines them; the message says why."""


# --- names -------------------------------------------------------------------------------------


def namespace(settings: Settings) -> str:
    return settings.glue_database


def identifier(settings: Settings, table: str) -> str:
    """`<namespace>.<table>`, as pyiceberg names it."""
    return f"{namespace(settings)}.{table}"


def spark_table(settings: Settings, table: str) -> str:
    """`movesmart.<namespace>.<table>`, as Spark SQL names it."""
    return f"{CATALOG_NAME}.{namespace(settings)}.{table}"


def sqlite_path(settings: Settings) -> Path:
    return settings.home_dir / "catalog" / "iceberg.db"


def s3_uri(uri: str) -> str:
    """`s3://` for `s3a://`: the scheme Glue, Athena, Redshift and pyiceberg expect."""
    return "s3://" + uri[len("s3a://") :] if uri.startswith("s3a://") else uri


def warehouse_location(settings: Settings) -> str:
    return s3_uri(settings.warehouse)


def table_location(settings: Settings, table: str) -> str:
    """`<warehouse>/<namespace>/<table>`: set at creation, the same in either catalog."""
    return f"{warehouse_location(settings).rstrip('/')}/{namespace(settings)}/{table}"


# --- properties --------------------------------------------------------------------------------


def spark_catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark settings that define the `movesmart` Iceberg catalog (and the Iceberg SQL extensions)."""
    conf = {
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        SPARK_CATALOG_PREFIX: "org.apache.iceberg.spark.SparkCatalog",
        f"{SPARK_CATALOG_PREFIX}.warehouse": warehouse_location(settings),
        # through S3A on S3 (endpoint, encryption, credentials: spark_session.spark_conf)
        f"{SPARK_CATALOG_PREFIX}.io-impl": "org.apache.iceberg.hadoop.HadoopFileIO",
        # every lookup reads the catalog: a table committed by another process is seen at once
        f"{SPARK_CATALOG_PREFIX}.cache-enabled": "false",
    }
    if settings.catalog == "glue":
        conf[f"{SPARK_CATALOG_PREFIX}.type"] = "glue"
        conf[f"{SPARK_CATALOG_PREFIX}.client.region"] = settings.aws_region
        if settings.s3_endpoint:  # moto serves Glue on the S3 endpoint's port
            conf[f"{SPARK_CATALOG_PREFIX}.glue.endpoint"] = settings.s3_endpoint
    else:
        conf.update(
            {
                f"{SPARK_CATALOG_PREFIX}.type": "jdbc",
                f"{SPARK_CATALOG_PREFIX}.uri": f"jdbc:sqlite:{sqlite_path(settings)}",
                f"{SPARK_CATALOG_PREFIX}.jdbc.schema-version": "V1",
                # `jdbc.*` reach the driver as connection properties: six tables commit at once,
                # SQLite serializes the writers, so a writer waits instead of failing
                f"{SPARK_CATALOG_PREFIX}.jdbc.busy_timeout": "60000",
                f"{SPARK_CATALOG_PREFIX}.jdbc.journal_mode": "WAL",
            }
        )
    if settings.warehouse_is_s3:
        # table locations are s3://: the same S3A client serves them
        conf["spark.hadoop.fs.s3.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
    return conf


S3_REQUEST_TIMEOUT_S = "60"  # pyarrow's S3 client, in pyiceberg_properties


def pyiceberg_properties(settings: Settings) -> dict[str, str]:
    """Properties for `pyiceberg.catalog.load_catalog("movesmart", **properties)` (no credentials)."""
    props: dict[str, str] = {"warehouse": warehouse_location(settings)}
    if settings.catalog == "glue":
        props.update({"type": "glue", "glue.region": settings.aws_region})
        if settings.s3_endpoint:
            props["glue.endpoint"] = settings.s3_endpoint
    else:
        props.update({"type": "sql", "uri": f"sqlite:///{sqlite_path(settings)}"})
    if settings.warehouse_is_s3:
        props["s3.region"] = settings.aws_region
        # seconds an S3 request may stall before pyarrow gives up. Its default (the AWS C++
        # SDK's 3 s without a byte) failed the streaming job's snapshot-history check right
        # after a 30 s endpoint freeze, while S3A in the same job waited the freeze out
        # (test_faults_s3.py): the driver now waits like S3A does instead of failing the batch
        props["s3.request-timeout"] = S3_REQUEST_TIMEOUT_S
        if settings.s3_endpoint:
            props["s3.endpoint"] = settings.s3_endpoint
    return props


def catalog_properties_json(settings: Settings) -> str:
    """What `movesmart catalog properties` prints."""
    return json.dumps({"namespace": namespace(settings), "properties": pyiceberg_properties(settings)})


def load_catalog(settings: Settings) -> Catalog:
    """The pyiceberg catalog of the tables."""
    from pyiceberg.catalog import load_catalog as _load

    if settings.catalog == "local":
        sqlite_path(settings).parent.mkdir(parents=True, exist_ok=True)
    return _load(CATALOG_NAME, **pyiceberg_properties(settings))


# --- schemas, derived from schemas.py ----------------------------------------------------------


def _iceberg_type(hive: str, next_id: list[int]) -> IcebergType:
    from pyiceberg import types as it

    simple: dict[str, IcebergType] = {
        "string": it.StringType(),
        "double": it.DoubleType(),
        "int": it.IntegerType(),
        "bigint": it.LongType(),
        "timestamp": it.TimestamptzType(),
        "binary": it.BinaryType(),
        "date": it.DateType(),
    }
    if hive in simple:
        return simple[hive]
    fields = []
    for f in LOCATION_FIELDS:  # the only struct: location
        fields.append(it.NestedField(next_id[0], f.name, it.DoubleType(), required=False))
        next_id[0] += 1
    return it.StructType(*fields)


def iceberg_schema(table: str) -> Schema:
    """The table's Iceberg schema: the stored columns of `schemas.columns_for_table` and the
    `event_date` column; ids 1..N for the top-level columns in order, then the struct's fields
    (the ids Iceberg itself assigns to a new table). Every column optional, as in the Parquet
    tables before: a required field is the contract's business, not the table's."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    columns = [*columns_for_table(table), (PARTITION_COLUMN, "date")]
    next_id = [len(columns) + 1]
    fields = [
        NestedField(i, name, _iceberg_type(hive, next_id), required=False)
        for i, (name, hive) in enumerate(columns, start=1)
    ]
    return Schema(*fields)


def event_time_column(table: str) -> str:
    """The column a table is partitioned by, by day: the event time (quarantine: Kafka's time)."""
    if table == QUARANTINE_TABLE:
        return "kafka_timestamp"
    return RECORDS_BY_NAME[table.removesuffix("_data")].event_time_field


def partition_spec(table: str, schema: Schema) -> PartitionSpec:
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform

    source = schema.find_field(event_time_column(table))
    return PartitionSpec(
        PartitionField(source_id=source.field_id, field_id=1000, transform=DayTransform(), name="event_day")
    )


def table_properties(table: str) -> dict[str, str]:
    props = dict(BASE_TABLE_PROPERTIES)
    for name, hive_type in columns_for_table(table):
        leaves = [(name, hive_type)]
        if hive_type.startswith("struct<"):
            leaves = [(f"{name}.{f.name}", "double") for f in LOCATION_FIELDS]
        for column, leaf_type in leaves:
            if leaf_type in _UNREPEATED_TYPES:
                props[f"write.parquet.dict-encoding-enabled.column.{column}"] = "false"
    return props


# --- ensure: create when missing, evolve by adding fields ----------------------------------------


def _incompatibilities(table: str, current: Schema, wanted: Schema) -> list[str]:
    """Why the table cannot take the wanted schema by adding fields, one line per field."""
    from pyiceberg.types import StructType

    problems: list[str] = []

    def walk(prefix: str, have: StructType, want: StructType) -> None:
        want_names = {f.name for f in want.fields}
        for f in have.fields:
            if f.name not in want_names:
                problems.append(
                    f"{table}.{prefix}{f.name}: in the table but not in schemas.py (dropping a field "
                    "is not an evolution the job makes; restore it)"
                )
        for w in want.fields:
            h = next((f for f in have.fields if f.name == w.name), None)
            if h is None:
                continue
            if isinstance(w.field_type, StructType) and isinstance(h.field_type, StructType):
                walk(f"{prefix}{w.name}.", h.field_type, w.field_type)
            elif h.field_type != w.field_type:
                problems.append(
                    f"{table}.{prefix}{w.name}: the table has {h.field_type}, schemas.py wants "
                    f"{w.field_type} (not a type change Iceberg can make in place)"
                )

    walk("", current.as_struct(), wanted.as_struct())
    return problems


def ensure_table(catalog: Catalog, settings: Settings, table: str) -> str:
    """Create the table when missing, add the fields schemas.py gained; "created", "evolved" or
    "unchanged". Raises CatalogError naming the field on an incompatible change."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        NoSuchIcebergTableError,
        NoSuchPropertyException,
        NoSuchTableError,
        TableAlreadyExistsError,
    )

    wanted = iceberg_schema(table)
    name = identifier(settings, table)
    try:
        current: Table = catalog.load_table(name)
    except (NoSuchIcebergTableError, NoSuchPropertyException) as err:
        # in Glue: the previous plain-Parquet layout registered its tables as Hive tables
        raise CatalogError(
            f"{name} is in the catalog but is not an Iceberg table ({err}); a table of the previous "
            "plain-Parquet layout is replaced by `movesmart tables import-legacy`"
        ) from None
    except NoSuchTableError:
        try:
            catalog.create_table(
                name,
                schema=wanted,
                location=table_location(settings, table),
                partition_spec=partition_spec(table, wanted),
                properties=table_properties(table),
            )
            return "created"
        except TableAlreadyExistsError:  # created concurrently: check it as any existing table
            current = catalog.load_table(name)
    for attempt in range(1, _EVOLVE_ATTEMPTS + 1):
        try:
            return _evolve(current, table, name, wanted)
        except CommitFailedException:  # the stream committed in between: look again
            if attempt == _EVOLVE_ATTEMPTS:
                raise
            current = catalog.load_table(name)
    raise AssertionError("unreachable")


# a table evolution commits while the stream commits every trigger: retried on a fresh table
_EVOLVE_ATTEMPTS = 5
# stored as the metadata's format version, not among the properties (Iceberg's reserved names)
_RESERVED_PROPERTIES = frozenset({"format-version"})


def _evolve(current: Table, table: str, name: str, wanted: Schema) -> str:
    """Add the missing fields and properties in one commit; no commit when nothing is missing."""
    problems = _incompatibilities(table, current.schema(), wanted)
    if problems:
        raise CatalogError(
            "the table schema cannot follow schemas.py: " + "; ".join(problems) + f" (table {name})"
        )
    props = table_properties(table)
    missing_props = {
        k: v for k, v in props.items() if k not in _RESERVED_PROPERTIES and current.properties.get(k) != v
    }
    older_format = current.format_version < int(props["format-version"])
    added = _added_fields(current.schema(), wanted)
    if not added and not missing_props and not older_format:
        return "unchanged"
    with current.transaction() as tx:
        if older_format:
            tx.upgrade_table_version(format_version=int(props["format-version"]))  # type: ignore[arg-type]
        if added:
            with tx.update_schema() as update:
                update.union_by_name(wanted)
        if missing_props:
            tx.set_properties(missing_props)
    return "evolved" if added or older_format else "unchanged"


def _added_fields(current: Schema, wanted: Schema) -> list[str]:
    have = {current.find_column_name(i) for i in current.field_ids}
    return [n for n in (wanted.find_column_name(i) for i in wanted.field_ids) if n not in have]


def ensure_namespace(catalog: Catalog, settings: Settings) -> None:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    with contextlib.suppress(NamespaceAlreadyExistsError):  # created concurrently
        catalog.create_namespace_if_not_exists(namespace(settings))


def ensure_tables(settings: Settings, catalog: Catalog | None = None) -> dict[str, str]:
    """Namespace and the six tables, created or evolved; {table: created|evolved|unchanged}.

    Refused (LegacyWarehouseError, a CatalogError) while the warehouse holds day folders of the
    previous plain-Parquet layout: the new tables would not show their rows (`tables/legacy.py`).
    """
    from movesmart_dagster.tables.legacy import check_no_legacy

    check_no_legacy(settings)
    catalog = catalog or load_catalog(settings)
    ensure_namespace(catalog, settings)
    return {table: ensure_table(catalog, settings, table) for table in ALL_TABLES}


def load_table(settings: Settings, table: str, catalog: Catalog | None = None) -> Table:
    return (catalog or load_catalog(settings)).load_table(identifier(settings, table))


def table_summary(table: Table) -> dict[str, Any]:
    """Snapshot id and totals of a table's current snapshot (rows, files, bytes)."""
    snap = table.current_snapshot()
    if snap is None:
        return {"snapshot_id": None, "total_rows": 0, "total_files": 0, "total_bytes": 0}
    summary = snap.summary.additional_properties if snap.summary else {}
    return {
        "snapshot_id": snap.snapshot_id,
        "total_rows": int(summary.get("total-records", 0)),
        "total_files": int(summary.get("total-data-files", 0)),
        "total_bytes": int(summary.get("total-files-size", 0)),
    }
