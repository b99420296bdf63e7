PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_OUT := docservice/_proto
PROTO_OPTS := client_generation=async,server_generation=async,google_protobuf_descriptors
# google/api/annotations.proto (the HTTP routes) comes with googleapis-common-protos.
GOOGLEAPIS_ROOT := import google.api, pathlib; print(pathlib.Path(google.api.__path__[0]).parent.parent)

.PHONY: install run test proto migrate lint fmt clean bench up down e2e

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP) migrate
	$(BIN)/python -m docservice

test: $(STAMP)
	$(BIN)/pytest

migrate: $(STAMP)
	$(BIN)/alembic upgrade head

# Regenerates the betterproto2 messages and grpclib service base from proto/.
proto: $(STAMP)
	rm -rf $(PROTO_OUT) && mkdir -p $(PROTO_OUT)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m grpc_tools.protoc -I proto \
		-I "$$($(BIN)/python -c "$(GOOGLEAPIS_ROOT)")" \
		--python_betterproto2_out=$(PROTO_OUT) \
		--python_betterproto2_opt=$(PROTO_OPTS) proto/document.proto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# The last revision that stores every version whole: the base of the storage comparison.
STORAGE_BASE ?= 3e2f4a7

# The benchmark matrix -> BENCHMARKS.md + benchmarks.png (no timed assertions live in tests).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.matrix
	$(BIN)/python -m bench.scaling
	$(BIN)/python -m bench.storage --base $(STORAGE_BASE)
	$(BIN)/python -m bench.history
	$(BIN)/python -m bench.search
	$(BIN)/python -m bench.feed
	$(BIN)/python -m bench.http

# The console's browser tests (tests/e2e): Playwright driving the system's Chromium
# (/usr/bin/chromium, which .ci/run installs), against a real server on SQLite.
e2e: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,e2e]'
	DOCSERVICE_E2E=1 $(BIN)/pytest tests/e2e

# The whole stack in containers (needs a Docker engine).
up:
	docker compose up --build -d

down:
	docker compose down
