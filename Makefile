# stream-ensemble: the two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One thread per process (library-default BLAS/OpenMP threading swings timings 10x on small
# machines): scale with processes instead.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE

# Addresses: every target, ops/ script and the test suite derives them from these two ports, so
# `KAFKA_PORT=39092 REDIS_PORT=36379 make up demo test down` never dials the default ports.
KAFKA_PORT ?= 9092
KAFKA_CONTROLLER_PORT ?= $(shell echo $$(( $(KAFKA_PORT) + 1 )))
REDIS_PORT ?= 6379
# the throwaway Redis Cluster (3 ports) and Sentinel set (3 ports) of the tests sit just above Redis
REDIS_CLUSTER_PORT ?= $(shell echo $$(( $(REDIS_PORT) + 10 )))
REDIS_SENTINEL_PORT ?= $(shell echo $$(( $(REDIS_PORT) + 20 )))
export KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT REDIS_CLUSTER_PORT REDIS_SENTINEL_PORT
export SE_BOOTSTRAP ?= 127.0.0.1:$(KAFKA_PORT)
export SE_REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/0
export SE_TEST_BOOTSTRAP ?= $(SE_BOOTSTRAP)
# tests use their own Redis database so they never touch an operator's keys in db 0
export SE_TEST_REDIS_URL ?= redis://127.0.0.1:$(REDIS_PORT)/15

.PHONY: help install up down train demo test typecheck lint test-unit test-integration bench-accuracy clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: $(VENV)/.installed  ## create .venv and install the package with test + bench extras

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@# setuptools warns on every editable install that a same-named folder may shadow imports (it is this one, on purpose)
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e ".[bench,test]"
	@touch $@

up:  ## start Redis and the Kafka broker (idempotent)
	@bash ops/up.sh

down:  ## stop the servers that ops/up.sh started
	@bash ops/down.sh

train: install  ## train the default pool and ensemble into var/registry
	@$(BIN)/stream-ensemble train

demo: install up  ## end-to-end demo on the real broker and Redis; last stdout line is JSON
	@$(BIN)/stream-ensemble demo

# make test stops only the servers it started itself (its own record file), so a developer's
# running broker survives `make test`.
test: install typecheck lint  ## type-check, start the servers, run every test tier, stop what was started
	@UP_RECORD=var/started-by-make-test bash ops/up.sh
	@status=0; $(BIN)/python -m pytest -q -p no:cacheprovider || status=$$?; \
	  UP_RECORD=var/started-by-make-test bash ops/down.sh; exit $$status

typecheck: install  ## mypy --strict over the package
	@$(BIN)/python -m mypy stream_ensemble

lint: install  ## ruff: unused or undefined names, import order
	@$(BIN)/python -m ruff check -q stream_ensemble tests

test-unit: install  ## unit + contract tests only (no servers)
	@$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration"

bench-accuracy: install  ## accuracy benchmark on $SE_DATA_DIR (or the user cache, see `datasets fetch`) -> results/
	@$(BIN)/stream-ensemble bench accuracy --out results/accuracy.json

# var/ holds the servers' data and pid files: deleting it under a running server would orphan
# it (nothing could find it to stop it). So clean stops what up.sh recorded, then refuses while
# a server started by ops/ from this tree still runs.
clean:  ## stop the servers ops/up.sh started, then remove generated state (registry, broker data, results)
	@bash ops/down.sh
	@UP_RECORD=var/started-by-make-test bash ops/down.sh >/dev/null
	@for f in var/kafka/kafka.pid var/redis/redis.pid; do \
	  if [ -s "$$f" ] && kill -0 "$$(cat $$f)" 2>/dev/null; then \
	    echo "clean: refusing: a server started from this tree still runs (pid $$(cat $$f), $$f); stop it with 'bash ops/down.sh --all' first" >&2; exit 2; \
	  fi; \
	done
	rm -rf var results
