# taskq — everything a fresh machine needs is installed by these targets.
#   make dev    the whole stack here: Kafka, Redis, API+UI, three workers (Ctrl-C stops it)
#   make test   installs what the tests need, starts Kafka/Redis on free ports, runs the suite
#   make chaos  10,000 tasks through worker kills and Kafka/Redis restarts; prints a report

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/taskq
$(shell mkdir -p $(CACHE))
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tools/kafka/pom.xml)
KAFKA_JARS := $(CACHE)/kafka-$(KAFKA_VERSION)/jars
export TASKQ_KAFKA_JARS := $(KAFKA_JARS)
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
PYTEST_ARGS ?=

.PHONY: help dev test test-fast lint deps venv kafka chromium clean bench chaos tools e2e images test-images

help:
	@sed -n 's/^#   //p' Makefile

# --- setup -----------------------------------------------------------------
deps:  ## system packages: Java (Kafka), redis-server
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing >/dev/null; fi

chromium:  ## Debian's chromium for the browser tests
	@command -v chromium >/dev/null || { $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium >/dev/null; }

$(VENV)/.stamp: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test,dev]'
	@touch $@

venv: $(VENV)/.stamp

# The stamp names the pom's content, not its mtime: a fresh clone reuses the cache, and jars are
# fetched into a temporary folder and moved in whole, so a concurrent run never sees half of them.
KAFKA_STAMP := $(KAFKA_JARS)/.stamp-$(shell sha1sum tools/kafka/pom.xml | cut -c1-12)
$(KAFKA_STAMP):
	@echo "fetching Apache Kafka $(KAFKA_VERSION) jars into $(KAFKA_JARS)"
	@tmp=$$(mktemp -d $(CACHE)/kafka-fetch.XXXXXX) && \
	  mvn -q -B -f tools/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$$tmp/jars && \
	  touch $$tmp/jars/$(notdir $(KAFKA_STAMP)) && rm -rf $(KAFKA_JARS).old && \
	  { [ ! -d $(KAFKA_JARS) ] || mv $(KAFKA_JARS) $(KAFKA_JARS).old; } && mv $$tmp/jars $(KAFKA_JARS) && rm -rf $$tmp $(KAFKA_JARS).old

kafka: deps $(KAFKA_STAMP)

# Helm and kubeconform for the chart tests, built from the Go module proxy into the cache.
HELM_VERSION := v3.19.0
KUBECONFORM_VERSION := v0.7.0
BIN := $(CACHE)/bin
$(BIN)/helm:
	@echo "building helm $(HELM_VERSION) into $(BIN)"
	@GOBIN=$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
$(BIN)/kubeconform:
	@GOBIN=$(BIN) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
tools: $(BIN)/helm $(BIN)/kubeconform

# --- run -------------------------------------------------------------------
dev: deps venv kafka
	$(VENV)/bin/taskq dev --workers 3

# --- checks ----------------------------------------------------------------
test: deps venv kafka chromium tools lint  ## ruff + mypy --strict, then the whole suite
	@$(PY) -m pytest --ignore=tests/e2e --ignore=tests/images $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast: venv  ## unit tests only, no services
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

IMAGE_TAG ?= dev
BASE_IMAGE ?= taskq-base:bookworm
images:  ## builds taskq-api and taskq-worker on a locally made base image (starts dockerd if needed)
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq docker.io debootstrap >/dev/null; }
	@CACHE=$(CACHE) images/dockerd.sh
	@if [ "$(BASE_IMAGE)" = "taskq-base:bookworm" ]; then CACHE=$(CACHE) images/base/build-base.sh $(BASE_IMAGE); fi
	@cp $${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt} images/build-ca.crt 2>/dev/null || : > images/build-ca.crt
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -f images/api/Dockerfile -t taskq-api:$(IMAGE_TAG) .
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -f images/worker/Dockerfile -t taskq-worker:$(IMAGE_TAG) .

test-images: deps venv kafka images  ## smoke-runs the images against local Kafka and Redis
	TASKQ_IMAGE_TAG=$(IMAGE_TAG) $(PY) -m pytest tests/images -v

e2e: venv tools  ## kind cluster + Strimzi + redis-operator + the chart; needs docker and kind
	$(PY) -m pytest tests/e2e -m e2e -v

PEERS := celery dramatiq arq rq
PEER_PKG_celery := celery[redis]>=5.5
PEER_PKG_dramatiq := dramatiq[redis]>=2
PEER_PKG_arq := arq>=0.26
PEER_PKG_rq := rq>=2
PEER_PKG_plot := matplotlib>=3.8
bench/.peers/%/.stamp:
	@$(PYTHON) -m venv bench/.peers/$*
	@bench/.peers/$*/bin/pip install -q "$(PEER_PKG_$*)"
	@touch $@

BENCH_TASKS ?= 20000
BENCH_REPS ?= 3
BENCH_ARGS ?=
bench: deps venv kafka $(foreach p,$(PEERS) plot,bench/.peers/$(p)/.stamp)  ## taskq vs Celery, Dramatiq, arq, RQ: throughput, latency, recovery, head-of-line
	$(PY) -m bench.run --tasks $(BENCH_TASKS) --reps $(BENCH_REPS) $(BENCH_ARGS)

chaos: deps venv kafka  ## the long chaos run: 10,000 tasks through kills and restarts
	$(PY) -m tests.chaos.run --tasks 10000

clean:
	rm -rf .taskq .pytest_cache .mypy_cache .ruff_cache
