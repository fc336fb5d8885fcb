# refnet: the one entry point. `make run` brings the network up; `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
PACKAGES := libs/platform libs/geo libs/frontdoor tools/dev services/intake services/referral services/shelter services/notifications services/ops services/web
STAMP := $(VENV)/.installed
TEST_FLAGS ?=

.PHONY: setup proto lint test test-unit test-e2e run demo status bench chaos clean images k8s-gen k8s-check k8s-test k8s-render k8s-apply

setup: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml) proto/pyproject.toml $(shell find proto/refnet -name '*.proto')
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt -r requirements-dev.txt
	./scripts/install_browser.sh
	./scripts/gen_proto.sh
	$(PIP) install -c constraints.txt -e proto $(foreach p,$(PACKAGES),-e $(p))
	@touch $@

# Generated code lives in proto/gen (ignored) and is installed as the refnet-proto package.
proto:
	@./scripts/gen_proto.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs/platform/src libs/geo/src libs/frontdoor/src services/web/src services/*/src/*/domain
	./scripts/buf.sh lint proto
	./scripts/buf_breaking.sh

test: setup lint
	$(PY) -m pytest $(TEST_FLAGS)

test-unit: setup
	$(PY) -m pytest tests/unit $(TEST_FLAGS)

test-e2e: setup
	$(PY) -m pytest tests/e2e $(TEST_FLAGS)

# make run COHOST=worker+relay (or all): a service's roles share a process (refnet-dev run --cohost).
run: setup
	$(VENV)/bin/refnet-dev run $(if $(COHOST),--cohost $(COHOST))

demo: setup
	$(VENV)/bin/refnet-dev demo

status: setup
	$(VENV)/bin/refnet status

# Figures, not timed tests: e.g. make bench BENCH_FLAGS="--postgres", make chaos CHAOS_FLAGS="--postgres --rate 5"
bench: setup
	$(PY) -m bench $(BENCH_FLAGS)

chaos: setup
	$(PY) -m bench.chaos $(CHAOS_FLAGS)

# Kubernetes: KafkaTopics, KafkaUsers and worker autoscaler limits are generated from the topic registry.
IMAGE_SERVICES := intake referral shelter notifications ops web
IMAGE_REPO ?= refnet
# One tag scheme for `make images` and every overlay (deploy/k8s/overlays/*: newTag): the release in VERSION.
# tests/k8s holds the overlays to it; a release bumps VERSION and the overlays' newTag together.
IMAGE_TAG ?= $(shell cat VERSION)
OVERLAY ?= dev

images:
	@command -v docker >/dev/null 2>&1 || { echo "make images: no 'docker' command on this machine; build where a Docker engine runs" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: 'docker' is installed but no Docker engine answers (start it, or set DOCKER_HOST)" >&2; exit 1; }
	@set -e; for svc in $(IMAGE_SERVICES); do \
	  echo "== $(IMAGE_REPO)/$$svc:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=1 docker build --build-arg SERVICE=$$svc -t $(IMAGE_REPO)/$$svc:$(IMAGE_TAG) .; \
	done

k8s-gen: setup
	$(PY) scripts/gen_k8s_kafka.py
	$(PY) scripts/gen_keycloak_realm.py

k8s-check: setup
	$(PY) scripts/gen_k8s_kafka.py --check
	$(PY) scripts/gen_keycloak_realm.py --check

k8s-test: setup
	$(PY) -m pytest tests/k8s $(TEST_FLAGS)

k8s-render:
	@kubectl kustomize deploy/k8s/overlays/$(OVERLAY)

k8s-apply:
	deploy/k8s/apply.sh $(OVERLAY)

clean:
	rm -rf $(VENV) proto/gen .cache var build
