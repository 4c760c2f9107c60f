# syntax=docker/dockerfile:1
# The Move Smart image for the Dagster code location, webserver, daemon, simulator, and the
# Spark master and workers of docker-compose.yml (they run the pyspark installed here, so the
# cluster's Spark, Java and Python are the driver's own).
# Stage 1 resolves the Spark jars with Maven from jvm/ — the same set `make setup` puts in
# .jars/spark: the Kafka source, Iceberg's Spark runtime and AWS bundle (Glue catalog), S3A
# (hadoop-aws), the SQLite JDBC driver of the embedded catalog, and our fast-path UDF — so
# nothing is downloaded when a container starts; stage 2 is Python 3.11 + a Java 17 JRE (the
# Spark driver of the streaming job runs here) + the pinned Python dependencies.
# Versions are checked against pyproject.toml/jvm/pom.xml by movesmart_dagster_tests/test_deploy.py.

FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jvm/ jvm/
# only the Spark jars (spark-connectors: Kafka, Iceberg, S3A, SQLite JDBC; spark-contract: our UDF);
# the broker runs in the apache/kafka image
RUN cd jvm && mvn -q -B -pl spark-connectors,spark-contract -am package && ls /build/.jars/spark/*.jar >/dev/null

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/movesmart
# dependencies first (cached while only the code changes), exactly as locked
COPY pyproject.toml requirements.lock README.md ./
COPY movesmart_dagster/ movesmart_dagster/
# editable: the package finds sql/ and .jars/ beside it (settings.REPO_ROOT), as in a checkout
RUN pip install -c requirements.lock -e . && pip check
COPY sql/ sql/
COPY --from=jars /build/.jars/spark .jars/spark

COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
RUN useradd --system --uid 10001 --create-home movesmart \
 && mkdir -p /var/lib/movesmart/dagster \
 && chown -R movesmart /var/lib/movesmart /opt/dagster/home
ENV DAGSTER_HOME=/opt/dagster/home \
    MOVESMART_HOME=/var/lib/movesmart \
    MOVESMART_JARS_DIR=/opt/movesmart/.jars
USER movesmart
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "movesmart_dagster.definitions"]
