"""The daily "insights" as pure Spark functions: DataFrames in, DataFrames out.

Why pure functions: the Dagster assets only read a day, call these and write the result, so
the logic is testable on any DataFrame and reusable from a notebook. Every function first
drops duplicate record ids (a replayed record must not count twice) and works in UTC.

- `vehicle_trip_summary`: per vehicle — readings, first/last seen, duration, distance
  travelled (haversine between consecutive fixes), average/top speed, start and end points.
- `hourly_speed_by_area`: per hour and coarse grid cell (GRID_DEG degrees, ~1 km) —
  readings, distinct vehicles, average/top speed.
- `weather_summary`: per hour — temperature, humidity, precipitation, wind, air quality and
  the most reported condition.
- `emergency_incident_summary`: per incident type and status — distinct incidents, reports,
  first and last report.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from movesmart_dagster.schemas import PARTITION_COLUMN, spark_table_schema
from movesmart_dagster.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

GRID_DEG = 0.01
EARTH_RADIUS_KM = 6371.0088


def file_schema(table: str):
    """A table's columns as the analytics read them (the stored columns, `event_date` aside)."""
    from pyspark.sql import types as T

    return T.StructType([f for f in spark_table_schema(table).fields if f.name != PARTITION_COLUMN])


def read_day(spark: SparkSession, settings: Settings, table: str, event_date: str) -> DataFrame:
    """One event_date of a table, read through Spark's Iceberg catalog (the current snapshot).

    The filter on the event time as well as on `event_date` lets Iceberg prune to the day's
    partition (the tables are partitioned by day of the event time). A table that does not
    exist yet reads as an empty DataFrame with the right schema."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    from movesmart_dagster.spark_session import use_catalog
    from movesmart_dagster.tables.catalog import event_time_column, spark_table

    use_catalog(spark, settings)
    schema = file_schema(table)
    day = date.fromisoformat(event_date)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    ts = F.col(event_time_column(table))
    try:
        rows = spark.table(spark_table(settings, table))
    except AnalysisException as err:
        if "TABLE_OR_VIEW_NOT_FOUND" in str(err) or "NoSuchTable" in str(err):
            return spark.createDataFrame([], schema)
        raise
    return rows.where(
        (F.col(PARTITION_COLUMN) == F.lit(day))
        & (ts >= F.lit(start))
        & (ts < F.lit(start + timedelta(days=1)))
    ).select(*schema.fieldNames())


def partition_path(warehouse: str, table: str, event_date: str) -> str:
    """An analytics result's day folder: `<warehouse>/analytics/<name>/event_date=D`."""
    return f"{warehouse}/{table}/{PARTITION_COLUMN}={event_date}"


def _haversine_km(lat1, lon1, lat2, lon2):
    from pyspark.sql import functions as F

    dlat = F.radians(lat2 - lat1)
    dlon = F.radians(lon2 - lon1)
    a = F.sin(dlat / 2) ** 2 + F.cos(F.radians(lat1)) * F.cos(F.radians(lat2)) * F.sin(dlon / 2) ** 2
    return F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.sqrt(a))


def vehicle_trip_summary(vehicle: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    v = (
        vehicle.dropDuplicates(["id"])
        .where(F.col("timestamp").isNotNull())
        .withColumn("lat", F.col("location.latitude"))
        .withColumn("lon", F.col("location.longitude"))
    )
    ordered = Window.partitionBy("deviceId").orderBy("timestamp", "id")
    v = v.withColumn(
        "segment_km",
        _haversine_km(F.lag("lat").over(ordered), F.lag("lon").over(ordered), F.col("lat"), F.col("lon")),
    )
    first = F.min_by
    last = F.max_by
    return (
        v.groupBy("deviceId")
        .agg(
            F.count("*").alias("readings"),
            F.min("timestamp").alias("first_seen"),
            F.max("timestamp").alias("last_seen"),
            F.round(F.coalesce(F.sum("segment_km"), F.lit(0.0)), 3).alias("distance_km"),
            F.round(F.avg("speed"), 2).alias("avg_speed_kmh"),
            F.round(F.max("speed"), 2).alias("max_speed_kmh"),
            first("lat", "timestamp").alias("start_latitude"),
            first("lon", "timestamp").alias("start_longitude"),
            last("lat", "timestamp").alias("end_latitude"),
            last("lon", "timestamp").alias("end_longitude"),
            first("make", "timestamp").alias("make"),
            first("model", "timestamp").alias("model"),
        )
        .withColumn(
            "duration_min",
            F.round((F.col("last_seen").cast("double") - F.col("first_seen").cast("double")) / 60.0, 2),
        )
        .orderBy("deviceId")
    )


def hourly_speed_by_area(vehicle: DataFrame, grid_deg: float = GRID_DEG) -> DataFrame:
    from pyspark.sql import functions as F

    v = vehicle.dropDuplicates(["id"]).where(F.col("location").isNotNull() & F.col("speed").isNotNull())
    cell = lambda c: F.round(F.floor(F.col(c) / grid_deg) * grid_deg, 6)  # noqa: E731
    return (
        v.withColumn("hour", F.date_trunc("hour", "timestamp"))
        .withColumn("cell_latitude", cell("location.latitude"))
        .withColumn("cell_longitude", cell("location.longitude"))
        .groupBy("hour", "cell_latitude", "cell_longitude")
        .agg(
            F.count("*").alias("readings"),
            F.countDistinct("deviceId").alias("vehicles"),
            F.round(F.avg("speed"), 2).alias("avg_speed_kmh"),
            F.round(F.max("speed"), 2).alias("max_speed_kmh"),
        )
        .orderBy("hour", "cell_latitude", "cell_longitude")
    )


def weather_summary(weather: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    w = weather.dropDuplicates(["id"]).withColumn("hour", F.date_trunc("hour", "timestamp"))
    return (
        w.groupBy("hour")
        .agg(
            F.count("*").alias("readings"),
            F.round(F.avg("temperature"), 2).alias("avg_temperature_c"),
            F.round(F.min("temperature"), 2).alias("min_temperature_c"),
            F.round(F.max("temperature"), 2).alias("max_temperature_c"),
            F.round(F.avg("humidity"), 1).alias("avg_humidity_pct"),
            F.round(F.avg("precipitation"), 2).alias("avg_precipitation_mm"),
            F.round(F.max("precipitation"), 2).alias("max_precipitation_mm"),
            F.round(F.avg("windSpeed"), 2).alias("avg_wind_kmh"),
            F.round(F.avg("airQualityIndex"), 1).alias("avg_aqi"),
            F.round(F.max("airQualityIndex"), 1).alias("max_aqi"),
            F.mode("weatherCondition").alias("main_condition"),
        )
        .orderBy("hour")
    )


def emergency_incident_summary(emergency: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    e = emergency.dropDuplicates(["id"])
    return (
        e.groupBy("type", "status")
        .agg(
            F.countDistinct("incidentId").alias("incidents"),
            F.count("*").alias("reports"),
            F.countDistinct("deviceId").alias("vehicles_reporting"),
            F.min("timestamp").alias("first_reported"),
            F.max("timestamp").alias("last_reported"),
        )
        .orderBy(F.desc("incidents"), "type", "status")
    )


# name -> (source table, function)
ANALYTICS = {
    "vehicle_trip_summary": ("vehicle_data", vehicle_trip_summary),
    "hourly_speed_by_area": ("vehicle_data", hourly_speed_by_area),
    "weather_summary": ("weather_data", weather_summary),
    "emergency_incident_summary": ("emergency_data", emergency_incident_summary),
}

# name -> the result's columns as (name, Spark simple type), in order. Readers that cannot run
# Spark (the DuckDB views of `movesmart query`) take the columns from here, so a view exists
# with the right columns before the first day is computed; a test holds it to Spark's schema.
OUTPUT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "vehicle_trip_summary": [
        ("deviceId", "string"),
        ("readings", "bigint"),
        ("first_seen", "timestamp"),
        ("last_seen", "timestamp"),
        ("distance_km", "double"),
        ("avg_speed_kmh", "double"),
        ("max_speed_kmh", "double"),
        ("start_latitude", "double"),
        ("start_longitude", "double"),
        ("end_latitude", "double"),
        ("end_longitude", "double"),
        ("make", "string"),
        ("model", "string"),
        ("duration_min", "double"),
    ],
    "hourly_speed_by_area": [
        ("hour", "timestamp"),
        ("cell_latitude", "double"),
        ("cell_longitude", "double"),
        ("readings", "bigint"),
        ("vehicles", "bigint"),
        ("avg_speed_kmh", "double"),
        ("max_speed_kmh", "double"),
    ],
    "weather_summary": [
        ("hour", "timestamp"),
        ("readings", "bigint"),
        ("avg_temperature_c", "double"),
        ("min_temperature_c", "double"),
        ("max_temperature_c", "double"),
        ("avg_humidity_pct", "double"),
        ("avg_precipitation_mm", "double"),
        ("max_precipitation_mm", "double"),
        ("avg_wind_kmh", "double"),
        ("avg_aqi", "double"),
        ("max_aqi", "double"),
        ("main_condition", "string"),
    ],
    "emergency_incident_summary": [
        ("type", "string"),
        ("status", "string"),
        ("incidents", "bigint"),
        ("reports", "bigint"),
        ("vehicles_reporting", "bigint"),
        ("first_reported", "timestamp"),
        ("last_reported", "timestamp"),
    ],
}


def output_table(name: str) -> str:
    """Where an analytics result lives in the warehouse, in the terms of `tables` (`analytics/<name>`)."""
    return f"analytics/{name}"


def output_path(warehouse: str, name: str, event_date: str) -> str:
    return partition_path(warehouse, output_table(name), event_date)


def write_day(df: DataFrame, warehouse: str, name: str, event_date: str) -> str:
    """Overwrite exactly this day's folder (idempotent: a re-run replaces, never appends)."""
    path = output_path(warehouse, name, event_date)
    # INT64 UTC timestamps like the tables' (not Spark's legacy INT96): what DuckDB and Spectrum expect
    df.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    df.coalesce(1).write.mode("overwrite").parquet(path)
    return path
