# Move Smart: two commands on a fresh machine -> `make dev` and `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# where the JVM jars go (MOVESMART_JARS_DIR points the code elsewhere when this changes)
JARS_DIR ?= .jars
JARS_STAMP := $(JARS_DIR)/.resolved
CDS_ARCHIVE := $(JARS_DIR)/spark-driver.jsa
# the JVM that maps the archive must be the one that wrote it: a new JDK rebuilds it
JAVA_BIN := $(shell j="$${JAVA_HOME:+$$JAVA_HOME/bin/java}"; readlink -f "$${j:-$$(command -v java)}" 2>/dev/null)
export MOVESMART_HOME ?= $(CURDIR)/.movesmart
# Debian's Maven 3.8 writes ANSI resets (ESC[0m) even with -q -B and no colour; none reach the terminal
STRIP_ANSI := sed -u 's/\x1b\[[0-9;]*m//g'

.PHONY: setup jars dev backfill test lint fmt stack-up stack-down bench clean

setup: $(STAMP) $(JARS_STAMP) $(CDS_ARCHIVE) ## install Python deps into .venv, JVM jars and the Spark class-data archive into .jars (idempotent)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@# wheel first: without it an older venv pip (Debian's 23.0) builds pyspark with a deprecated setup.py install
	@$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock wheel
	@echo "setup: pip install (pinned, ~140 packages; pyspark alone is ~400 MB) ..."; SECONDS=0; set -o pipefail; \
	  $(BIN)/pip install --disable-pip-version-check --progress-bar off -c requirements.lock -e '.[dev]' \
	  | tee $(VENV)/pip-install.log | $(PY) tools/pip_progress.py && \
	  echo "setup: pip install done in $${SECONDS} s (full log: $(VENV)/pip-install.log)"
	@echo "setup: pip check ..."; SECONDS=0; out=$$($(BIN)/pip check) || { echo "$$out"; exit 1; }; \
	  echo "setup: pip check done in $${SECONDS} s"
	@touch $(STAMP)

$(JARS_STAMP): jvm/pom.xml jvm/kafka-broker/pom.xml jvm/spark-connectors/pom.xml jvm/spark-contract/pom.xml $(wildcard jvm/spark-contract/src/main/java/io/movesmart/spark/*.java)
	@command -v mvn >/dev/null || { echo "Maven (mvn) is required: see README prerequisites"; exit 1; }
	@rm -rf $(JARS_DIR)/kafka $(JARS_DIR)/spark
	@echo "setup: Maven jars (Kafka broker, Spark connectors, our contract UDF) ..."; SECONDS=0; \
	  set -o pipefail; cd jvm && mvn -q -B -Dstyle.color=never -Dmovesmart.jars.dir=$(abspath $(JARS_DIR)) package 2>&1 | $(STRIP_ANSI) && \
	  echo "setup: Maven jars done in $${SECONDS} s"
	@touch $(JARS_STAMP)

jars: $(JARS_STAMP)

# the Spark driver's class-data archive (see tools/build_spark_cds.py): ~2 s off each Spark start
$(CDS_ARCHIVE): $(STAMP) $(JARS_STAMP) tools/build_spark_cds.py $(JAVA_BIN)
	@echo "setup: Spark class-data archive (runs a small Spark workload once) ..."; SECONDS=0; \
	  MOVESMART_JARS_DIR=$(abspath $(JARS_DIR)) $(BIN)/python tools/build_spark_cds.py && echo "setup: class-data archive done in $${SECONDS} s"

stack-up: setup
	@$(BIN)/movesmart stack up

stack-down:
	@test -x $(BIN)/movesmart && $(BIN)/movesmart stack down || true

# make dev SIMULATOR=0: no simulator (bring your own producer); SEED=0: no simulated past day at the first start;
# MOVESMART_LOG_LEVEL=INFO: more of Dagster's log
SIMULATOR ?= 1
SEED ?= 1
dev: setup
	@$(BIN)/python -m movesmart_dagster.dev $(if $(filter 0 no false off,$(SIMULATOR)),--no-simulator) $(if $(filter 0 no false off,$(SEED)),--no-seed)

# make backfill START=2024-02-01 END=2024-02-03: the daily analytics as one run, in make dev's instance
backfill: setup
	@test -n "$(START)" || { echo "usage: make backfill START=YYYY-MM-DD [END=YYYY-MM-DD]"; exit 2; }
	@$(BIN)/movesmart backfill --start $(START) $(if $(END),--end $(END))

test: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/python tools/audit_deps.py
	@$(BIN)/pytest -q

lint: setup ## ruff, and `dg check defs` (the code location loads)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@VIRTUAL_ENV=$(abspath $(VENV)) PYTHONWARNINGS=ignore $(BIN)/dg check defs

fmt: setup
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

bench: setup
	@$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .jars jvm/*/target
