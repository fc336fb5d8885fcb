# refnet: the one entry point. `make run` brings the network up; `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
PACKAGES := libs/platform libs/geo tools/dev services/intake services/referral services/shelter services/notifications
STAMP := $(VENV)/.installed
TEST_FLAGS ?=

.PHONY: setup proto lint test test-unit test-integration test-e2e run demo bench clean

setup: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml) proto/pyproject.toml $(shell find proto/refnet -name '*.proto')
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -r requirements-dev.txt
	./scripts/gen_proto.sh
	$(PIP) install -c constraints.txt -e proto $(foreach p,$(PACKAGES),-e $(p))
	@touch $@

# Generated code lives in proto/gen (ignored) and is installed as the refnet-proto package.
proto:
	@./scripts/gen_proto.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs/platform/src libs/geo/src services/*/src/*/domain
	./scripts/buf.sh lint proto

test: setup
	$(PY) -m pytest $(TEST_FLAGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(TEST_FLAGS)

test-e2e: setup
	$(PY) -m pytest tests/e2e $(TEST_FLAGS)

run: setup
	$(VENV)/bin/refnet-dev run

demo: setup
	$(VENV)/bin/refnet-dev demo

clean:
	rm -rf $(VENV) proto/gen .cache var build
