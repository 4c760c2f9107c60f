"""A faithful reimplementation of the seed's Spark job (the tutorial's jobs/spark-city.py).

For the benchmark only: five independent queries (one per topic), `CAST(value AS STRING)`,
`from_json` with the seed's schemas (location as a plain string, as the seed declared it),
`select data.*`, a watermark that does nothing, the plain Parquet file sink with a
checkpoint per query, default trigger, and `awaitTermination()` on the last query only.
What differs from the seed is only what the benchmark must control: the broker address,
the output root (a local folder instead of the seed's bucket) and the jars (spark.jars
from `.jars/spark` instead of `--packages`).

    python bench/seed_job.py --bootstrap localhost:9092 --out /tmp/seed-out
"""

from __future__ import annotations

import argparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.functions import col, from_json
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType, TimestampType


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--out", required=True, help="output root (the seed used s3a://spark-streaming-data)")
    p.add_argument("--jars", required=True, help="comma-separated jars (the seed used --packages)")
    p.add_argument("--master", default="local[*]")
    p.add_argument("--driver-memory", default="2g")
    args = p.parse_args()

    spark = (
        SparkSession.builder.appName("SmartCityStreaming")
        .master(args.master)
        .config("spark.jars", args.jars)
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    # Adjust the log level to minimize the console output on executors
    spark.sparkContext.setLogLevel("WARN")

    # vehicle schema
    vehicleSchema = StructType(
        [
            StructField("id", StringType(), True),
            StructField("deviceId", StringType(), True),
            StructField("timestamp", TimestampType(), True),
            StructField("location", StringType(), True),
            StructField("speed", DoubleType(), True),
            StructField("direction", StringType(), True),
            StructField("make", StringType(), True),
            StructField("model", StringType(), True),
            StructField("year", IntegerType(), True),
            StructField("fuelType", StringType(), True),
        ]
    )
    # gpsSchema
    gpsSchema = StructType(
        [
            StructField("id", StringType(), True),
            StructField("deviceId", StringType(), True),
            StructField("timestamp", TimestampType(), True),
            StructField("speed", DoubleType(), True),
            StructField("direction", StringType(), True),
            StructField("vehicleType", StringType(), True),
        ]
    )
    # trafficSchema
    trafficSchema = StructType(
        [
            StructField("id", StringType(), True),
            StructField("deviceId", StringType(), True),
            StructField("cameraId", StringType(), True),
            StructField("location", StringType(), True),
            StructField("timestamp", TimestampType(), True),
            StructField("snapshot", StringType(), True),
        ]
    )
    # weatherSchema
    weatherSchema = StructType(
        [
            StructField("id", StringType(), True),
            StructField("deviceId", StringType(), True),
            StructField("location", StringType(), True),
            StructField("timestamp", TimestampType(), True),
            StructField("temperature", DoubleType(), True),
            StructField("weatherCondition", StringType(), True),
            StructField("precipitation", DoubleType(), True),
            StructField("windSpeed", DoubleType(), True),
            StructField("humidity", IntegerType(), True),
            StructField("airQualityIndex", DoubleType(), True),
        ]
    )
    # emergencySchema
    emergencySchema = StructType(
        [
            StructField("id", StringType(), True),
            StructField("deviceId", StringType(), True),
            StructField("incidentId", StringType(), True),
            StructField("type", StringType(), True),
            StructField("timestamp", TimestampType(), True),
            StructField("location", StringType(), True),
            StructField("status", StringType(), True),
            StructField("description", StringType(), True),
        ]
    )

    def read_kafka_topic(topic: str, schema: StructType) -> DataFrame:
        return (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", args.bootstrap)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .load()
            .selectExpr("CAST(value AS STRING)")
            .select(from_json(col("value"), schema).alias("data"))
            .select("data.*")
            .withWatermark("timestamp", "2 minutes")
        )

    def streamWriter(input: DataFrame, checkpointFolder: str, output: str):  # noqa: N802, A002 - seed's names
        return (
            input.writeStream.format("parquet")
            .option("checkpointLocation", checkpointFolder)
            .option("path", output)
            .outputMode("append")
            .start()
        )

    vehicleDF = read_kafka_topic("vehicle_data", vehicleSchema).alias("vehicle")
    gpsDF = read_kafka_topic("gps_data", gpsSchema).alias("gps")
    trafficDF = read_kafka_topic("traffic_data", trafficSchema).alias("traffic")
    weatherDF = read_kafka_topic("weather_data", weatherSchema).alias("weather")
    emergencyDF = read_kafka_topic("emergency_data", emergencySchema).alias("emergency")

    out = args.out.rstrip("/")
    streamWriter(vehicleDF, f"{out}/checkpoints/vehicle_data", f"{out}/data/vehicle_data")
    streamWriter(gpsDF, f"{out}/checkpoints/gps_data", f"{out}/data/gps_data")
    streamWriter(trafficDF, f"{out}/checkpoints/traffic_data", f"{out}/data/traffic_data")
    streamWriter(weatherDF, f"{out}/checkpoints/weather_data", f"{out}/data/weather_data")
    query5 = streamWriter(emergencyDF, f"{out}/checkpoints/emergency_data", f"{out}/data/emergency_data")

    query5.awaitTermination()


if __name__ == "__main__":
    main()
