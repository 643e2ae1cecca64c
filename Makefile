# invora-python — every target installs ./.venv first when needed, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install generate check-generated test test-matrix lint typecheck demo sandbox bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,locust,otel]'
	touch $(STAMP)

## Regenerate protos/ and src/invora/_proto from codegen/upstream (deterministic; output is committed).
generate: $(STAMP)
	$(PY) codegen/generate.py

## Fail when the committed generated code differs from what `make generate` would write.
check-generated: $(STAMP)
	$(PY) codegen/generate.py --check

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests codegen benchmarks examples
	$(VENV)/bin/ruff format --check src tests codegen benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## The whole suite: lint, strict typing of hand-written code, generated-code drift, and the tests.
test: lint typecheck
	$(PY) -m pytest -q

## The compatibility matrix: the suite on Python 3.10-3.13, on the lowest protobuf/grpcio, from the wheel.
test-matrix:
	.ci/matrix

## The main job: a walk through the SDK against the embedded sandbox.
demo: $(STAMP)
	$(PY) examples/demo.py

sandbox: $(STAMP)
	$(PY) -m invora.sandbox --grpc-port 50051 --http-port 8080

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build dist .matrix .pytest_cache .mypy_cache .ruff_cache
