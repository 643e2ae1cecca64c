# invora-python — every target installs ./.venv first when needed, so each works on a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# buf (npm @bufbuild/buf), project-local: tests drive it as a third-party gRPC client of the sandbox.
BUF_VERSION := 1.75.0
TOOLS  := .tools
BUF    := $(TOOLS)/node_modules/.bin/buf

.PHONY: install tools generate check-generated test lint typecheck demo sandbox bench clean

install: $(STAMP) tools

tools: $(BUF)

$(BUF):
	npm install --no-save --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

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
test: lint typecheck tools
	$(PY) -m pytest -q

## The main job: a walk through the SDK against the embedded sandbox.
demo: $(STAMP)
	$(PY) examples/demo.py

## A local gateway until Ctrl-C; `source sandbox.env` in another shell sets INVORA_* for the CLI and the SDK.
sandbox: $(STAMP)
	$(PY) -m invora.sandbox --grpc-port 50051 --http-port 8080 --env-file sandbox.env

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(TOOLS) build dist .pytest_cache .mypy_cache .ruff_cache
