# Two commands do all set-up on a fresh machine:
#   make demo   run the whole service locally on an embedded default
#   make test   lint, type-check and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test system-packages lint typecheck unit integration bench schemas clean

# evalq with its dev extras, and its test tooling: the emulators' own distribution
# (emulators/, never in the production wheel or image) with its pytest plugin and AgentOS.
$(BIN)/evalq: pyproject.toml emulators/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e './emulators[test]'
	@touch $@

demo: $(BIN)/evalq
	$(BIN)/evalq demo

# What PyPI lacks: redis-server, openssl, rabbitmq-server (the tests start private
# servers and nodes of their own), promtool and kubectl (deploy/'s checks). Installed
# with apt-get when missing and make runs as root, else named in one line.
system-packages:
	@bash .ci/system-packages

# Lint, then the unit lane (it stops at its first failure, so a broken unit test stops CI
# within a few minutes) side by side with types and the system packages, which the unit
# tests do not need (fakeredis, in-process emulators), so their times overlap; then the
# rest: deploy/'s checks and the integration tests. Two pytest processes (pytest-xdist):
# the integration tests mostly wait on the real processes they start, so two halve the
# wall time on two cores (docs in README).
test: lint
	$(MAKE) --no-print-directory -j3 --output-sync=target unit typecheck system-packages
	$(BIN)/pytest -n 2 tests/deploy tests/integration

lint: $(BIN)/evalq
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(BIN)/evalq
	$(BIN)/mypy

# The unit tests alone (fakeredis, the emulators in-process on the tests' clock: no
# system package), two processes, stopping at the first failure.
unit: $(BIN)/evalq
	$(BIN)/pytest -n 2 -x tests/unit

integration: system-packages $(BIN)/evalq
	$(BIN)/pytest -n 2 tests/integration

bench: $(BIN)/evalq
	$(BIN)/python -m tests.bench

schemas: $(BIN)/evalq
	$(BIN)/python -m api_contracts.schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
