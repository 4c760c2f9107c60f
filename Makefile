# Move Smart: two commands on a fresh machine -> `make dev` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.resolved
CDS_ARCHIVE := .jars/spark-driver.jsa
# the JVM that maps the archive must be the one that wrote it: a new JDK rebuilds it
JAVA_BIN := $(shell j="$${JAVA_HOME:+$$JAVA_HOME/bin/java}"; readlink -f "$${j:-$$(command -v java)}" 2>/dev/null)
export MOVESMART_HOME ?= $(CURDIR)/.movesmart

.PHONY: setup jars dev test lint fmt stack-up stack-down bench clean

setup: $(STAMP) $(JARS_STAMP) $(CDS_ARCHIVE) ## install Python deps into .venv, JVM jars and the Spark class-data archive into .jars (idempotent)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@$(BIN)/pip check
	@touch $(STAMP)

$(JARS_STAMP): jvm/pom.xml jvm/kafka-broker/pom.xml jvm/spark-connectors/pom.xml jvm/spark-contract/pom.xml $(wildcard jvm/spark-contract/src/main/java/io/movesmart/spark/*.java)
	@command -v mvn >/dev/null || { echo "Maven (mvn) is required: see README prerequisites"; exit 1; }
	@rm -rf .jars/kafka .jars/spark
	@cd jvm && mvn -q -B -Dstyle.color=never package
	@touch $(JARS_STAMP)

jars: $(JARS_STAMP)

# the Spark driver's class-data archive (see movesmart_dagster/spark_cds.py): ~2 s off each Spark start
$(CDS_ARCHIVE): $(STAMP) $(JARS_STAMP) movesmart_dagster/spark_cds.py $(JAVA_BIN)
	@$(BIN)/python -m movesmart_dagster.spark_cds

stack-up: setup
	@$(BIN)/movesmart stack up

stack-down:
	@test -x $(BIN)/movesmart && $(BIN)/movesmart stack down || true

dev: setup
	@$(BIN)/python -m movesmart_dagster.dev

test: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/pytest -q

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

fmt: setup
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

bench: setup
	@$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .jars jvm/*/target
