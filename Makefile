# taskq — everything a fresh machine needs is installed by these targets.
#   make dev    the whole stack here: Kafka, Redis, API+UI, three workers (Ctrl-C stops it)
#   make dev-prometheus  the same plus a Prometheus scraping it, with the chart's alert rules
#   make test   installs what the tests need, starts Kafka/Redis on free ports, runs the suite
#   make chaos  10,000 tasks through worker kills and Kafka/Redis restarts; prints a report
#   make fuzz   generated poison messages against real Kafka and worker processes, for longer

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/taskq
$(shell mkdir -p $(CACHE) 2>/dev/null)
ifeq ($(wildcard $(CACHE)/.),)
$(error cannot create the cache folder $(CACHE): set CACHE=<a writable folder>)
endif
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tools/kafka/pom.xml)
KAFKA_JARS := $(CACHE)/kafka-$(KAFKA_VERSION)/jars
export TASKQ_KAFKA_JARS := $(KAFKA_JARS)
# Tests and scripts find the cache (helm, kubeconform, cluster binaries) through this, whatever CACHE is.
export TASKQ_CACHE := $(CACHE)
PYTEST_ARGS ?= --durations=25

.PHONY: lock help dev dev-prometheus prometheus test test-ci coverage fuzz e2e-prep test-e2e test-autoscaling test-prometheus test-fast lint deps venv kafka chromium clean bench bench-api bench-flow bench-redis soak chaos tools e2e images test-images

help:
	@sed -n 's/^#   //p' Makefile

# --- setup -----------------------------------------------------------------
# Every step names what it lacks in one line (tools/need.sh, tools/fail.sh) instead of a Make error.
deps:  ## system packages: Java (Kafka), Maven (its jars), redis-server
	@tools/need.sh redis-server:redis-server java:openjdk-17-jre-headless mvn:maven
	@v=$$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p'); \
	  [ "$${v%%.*}" -ge 17 ] 2>/dev/null || { echo "error: Kafka needs Java 17+, 'java' here is $${v:-unknown}: install openjdk-17-jre-headless" >&2; exit 1; }

chromium:  ## Debian's chromium for the browser tests
	@tools/need.sh chromium:chromium

prometheus:  ## Debian's prometheus and promtool: the dashboard and alert tests, make dev-prometheus
	@tools/need.sh --no-recommends prometheus:prometheus promtool:prometheus

$(VENV)/.stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "error: taskq needs Python 3.11+ ('$(PYTHON)' is $$($(PYTHON) -V 2>&1)); run make PYTHON=python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || tools/need.sh _no_such_command_:python3-venv
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv $(VENV)' failed (see above)" >&2; exit 1; }
	@$(PY) -m pip install -q --upgrade pip || { echo "error: pip could not reach the package index (see above)" >&2; exit 1; }
	@$(PY) -m pip install -q -e '.[test,dev]' || { echo "error: installing taskq's Python dependencies failed (see above)" >&2; exit 1; }
	@touch $@

venv: $(VENV)/.stamp

# The stamp names the pom's content, not its mtime: a fresh clone reuses the cache, and jars are
# fetched into a temporary folder and moved in whole, so a concurrent run never sees half of them.
KAFKA_STAMP := $(KAFKA_JARS)/.stamp-$(shell sha1sum tools/kafka/pom.xml | cut -c1-12)
$(KAFKA_STAMP): | deps
	@echo "fetching Apache Kafka $(KAFKA_VERSION) jars into $(KAFKA_JARS)"
	@mkdir -p $(dir $(KAFKA_JARS)) || { echo "error: cannot create $(dir $(KAFKA_JARS)); set CACHE=<a writable folder>" >&2; exit 1; }
	@tmp=$$(mktemp -d $(CACHE)/kafka-fetch.XXXXXX) && \
	  { mvn -q -B -f tools/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$$tmp/jars \
	    || { rm -rf $$tmp; echo "error: Maven could not fetch the Kafka jars (see above; a proxy goes in ~/.m2/settings.xml)" >&2; exit 1; }; } && \
	  touch $$tmp/jars/$(notdir $(KAFKA_STAMP)) && rm -rf $(KAFKA_JARS).old && \
	  { [ ! -d $(KAFKA_JARS) ] || mv $(KAFKA_JARS) $(KAFKA_JARS).old; } && mv $$tmp/jars $(KAFKA_JARS) && rm -rf $$tmp $(KAFKA_JARS).old

kafka: deps $(KAFKA_STAMP)

# Helm and kubeconform for the chart tests, built from the Go module proxy into the cache.
HELM_VERSION := v3.19.0
KUBECONFORM_VERSION := v0.7.0
BIN := $(CACHE)/bin
GO_INSTALL = command -v go >/dev/null || { echo "error: building $(1) needs Go 1.22+ (https://go.dev/doc/install, or apt-get install golang)" >&2; exit 1; }; \
	GOBIN=$(BIN) go install $(2) || { echo "error: 'go install $(2)' failed (see above)" >&2; exit 1; }
$(BIN)/helm:
	@echo "building helm $(HELM_VERSION) into $(BIN)"
	@$(call GO_INSTALL,helm,helm.sh/helm/v3/cmd/helm@$(HELM_VERSION))
$(BIN)/kubeconform:
	@echo "building kubeconform $(KUBECONFORM_VERSION) into $(BIN)"
	@$(call GO_INSTALL,kubeconform,github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION))
# The dashboard checker: Grafana's typed dashboard model (grafana-foundation-sdk) in a pinned module.
$(BIN)/dashcheck: tools/grafana/go.mod tools/grafana/go.sum tools/grafana/main.go
	@echo "building dashcheck (grafana-foundation-sdk) into $(BIN)"
	@command -v go >/dev/null || { echo "error: building dashcheck needs Go 1.23+ (apt-get install golang)" >&2; exit 1; }
	@cd tools/grafana && CGO_ENABLED=0 go build -trimpath -o $(BIN)/dashcheck . || { echo "error: building dashcheck failed (see above)" >&2; exit 1; }
tools: $(BIN)/helm $(BIN)/kubeconform $(BIN)/dashcheck crds

# --- run -------------------------------------------------------------------
dev: deps venv kafka
	$(VENV)/bin/taskq dev --workers 3

# Prometheus on a free port of 127.0.0.1 (printed), the alert rules rendered from the chart by helm.
dev-prometheus: deps venv kafka tools prometheus
	$(VENV)/bin/taskq dev --workers 3 --prometheus

# --- checks ----------------------------------------------------------------
# The suite runs in two pytest processes, each with its own Kafka and Redis: most tests wait on
# session timeouts and worker restarts rather than on the CPU, so two take about half the time
# even on two cores. The e2e runs beside it (tools/test.sh).
PYTEST_PARALLEL ?= -n 2 --dist worksteal
# make test runs without coverage: tracing every line of the suite and of the worker processes it
# starts costs about 30% more CPU (measured: 148 CPU-s instead of 114 for test_api + test_flow),
# which on two cores is what puts make test past its 20 minutes. make coverage measures it.
COVERAGE ?=
COVERAGE_ARGS = --cov --cov-report=term:skip-covered
E2E ?= 1
export E2E
test:  ## ruff + mypy --strict, the whole suite with the Kubernetes e2e beside it (E2E=0 skips the e2e, saying so)
	@MAKE="$(MAKE)" PY="$(PY)" CACHE="$(CACHE)" PYTEST_PARALLEL="$(PYTEST_PARALLEL)" COVERAGE="$(COVERAGE)" \
	  PYTEST_ARGS="$(PYTEST_ARGS)" tools/test.sh

# What CI runs, as CI runs it: a fresh clone of HEAD, an empty taskq cache, no terminal (a new
# session, stdin from /dev/null), CI=true and none of this shell's other variables but PATH and HOME.
test-ci:  ## .ci/run in a fresh clone of HEAD with CI's environment; the log is kept and its path printed
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/taskq-ci-clone.XXXXXX") && chmod 755 "$$dir" && git clone -q . "$$dir" && \
	  echo "ci clone of $$(git rev-parse --short HEAD) in $$dir; log in $$dir.log" && \
	  env -i PATH="$$PATH" HOME="$$HOME" CI=true setsid bash "$$dir/.ci/run" </dev/null >"$$dir.log" 2>&1; rc=$$?; \
	  tail -n 40 "$$dir.log"; rm -rf "$$dir"; exit $$rc

# The e2e suite on this machine's own single-node cluster (tools/cluster): built when the machine
# can host it (root, cgroups, containerd), images cached; the test modules start and stop the
# cluster themselves, so the teardown check runs too. Elsewhere one line says why and it skips.
E2E_ARGS ?=
# What the e2e suite needs on this machine: Prometheus, the cluster's binaries and its images.
e2e-prep: venv tools
	@why=$$($(PY) -c 'from tests.e2e.cluster import can_host_cluster; print(can_host_cluster() or "")'); \
	if [ -n "$$why" ] && [ "$(E2E)" = 0 ]; then echo "e2e: skipped (E2E=0): $$why"; \
	elif [ -n "$$why" ]; then echo "error: this machine cannot host the e2e cluster: $$why (E2E=0 skips the e2e)" >&2; exit 1; \
	else $(MAKE) --no-print-directory prometheus && \
	  $(MAKE) --no-print-directory cluster-deps cluster-bin cluster-images || exit 1; fi

test-e2e: venv tools
	@[ -n "$(E2E_PREPARED)" ] || $(MAKE) --no-print-directory e2e-prep || exit 1; \
	ours=1; [ -e /run/netns/taskq-k8s ] && ours=""; \
	$(PY) -m pytest tests/e2e -m e2e --ignore=tests/e2e/test_kind.py --ignore=tests/e2e/test_autoscaling.py \
	  --ignore=tests/e2e/test_prometheus_sd.py $(E2E_ARGS); rc=$$?; \
	if [ -n "$$ours" ] && [ -e /run/netns/taskq-k8s ]; then $(MAKE) --no-print-directory cluster-down; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no e2e tests: failing"; exit 1; fi; exit $$rc

# The chart's autoscaling on the same cluster: KEDA (lag) and a CPU HPA (metrics-server), both
# built from the Go module proxy into the cluster's bin folder. Not part of make test: KEDA's
# cold build alone takes longer than the whole of make test may (see tools/cluster/README.md).
test-autoscaling: venv tools
	@why=$$($(PY) -c 'from tests.e2e.cluster import can_host_cluster; print(can_host_cluster() or "")'); \
	if [ -n "$$why" ]; then echo "autoscaling e2e: skipped: $$why"; \
	else $(MAKE) --no-print-directory cluster-deps cluster-bin cluster-autoscalers-bin cluster-images || exit 1; fi; \
	ours=1; [ -e /run/netns/taskq-k8s ] && ours=""; \
	$(PY) -m pytest tests/e2e/test_autoscaling.py -m e2e $(E2E_ARGS); rc=$$?; \
	if [ -n "$$ours" ] && [ -e /run/netns/taskq-k8s ]; then $(MAKE) --no-print-directory cluster-down; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no autoscaling tests: failing"; exit 1; fi; exit $$rc

# Prometheus 3 with kubernetes_sd_configs (built from the Go module proxy; Debian's 2.42 has no
# Kubernetes discovery) finds and scrapes the release's pods on the same cluster. Not part of
# make test: its cold build alone is longer than the suite may spend (see tools/cluster/README.md).
test-prometheus: venv tools
	@why=$$($(PY) -c 'from tests.e2e.cluster import can_host_cluster; print(can_host_cluster() or "")'); \
	if [ -n "$$why" ]; then echo "prometheus e2e: skipped: $$why"; \
	else $(MAKE) --no-print-directory cluster-deps cluster-bin cluster-prometheus-bin cluster-images || exit 1; fi; \
	ours=1; [ -e /run/netns/taskq-k8s ] && ours=""; \
	$(PY) -m pytest tests/e2e/test_prometheus_sd.py -m e2e $(E2E_ARGS); rc=$$?; \
	if [ -n "$$ours" ] && [ -e /run/netns/taskq-k8s ]; then $(MAKE) --no-print-directory cluster-down; fi; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no prometheus tests: failing"; exit 1; fi; exit $$rc

# Line coverage of src/taskq over the suite and the worker processes it starts (the e2e aside),
# the files below 100% and the total printed; below pyproject.toml's fail_under it fails.
coverage: deps venv kafka tools chromium prometheus  ## the suite under coverage, failing below the floor (about 20 min)
	@$(PY) -m pytest --ignore=tests/e2e --ignore=tests/images $(PYTEST_PARALLEL) $(COVERAGE_ARGS) $(PYTEST_ARGS); \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Every test that needs no Kafka, Redis, Chromium or cluster (unit, chart, setup): tests/conftest.py
# marks integration each test that uses the services fixture or lives in tests/integration or tests/chaos.
test-fast: venv tools prometheus  ## the tests that need no services, in under a minute
	@$(PY) -m pytest tests -m "not integration and not browser and not e2e" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

lint: venv
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

IMAGE_TAG ?= dev
BASE_IMAGE ?= taskq-base:bookworm
images:  ## builds taskq-api and taskq-worker on a locally made base image (starts dockerd if needed)
	@tools/need.sh dockerd:docker.io debootstrap:debootstrap
	@CACHE=$(CACHE) images/dockerd.sh
	@if [ "$(BASE_IMAGE)" = "taskq-base:bookworm" ]; then CACHE=$(CACHE) images/base/build-base.sh $(BASE_IMAGE); fi
	@cp $${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt} images/build-ca.crt 2>/dev/null || : > images/build-ca.crt
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -f images/api/Dockerfile -t taskq-api:$(IMAGE_TAG) .
	DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -f images/worker/Dockerfile -t taskq-worker:$(IMAGE_TAG) .

# The images install only hashed requirements (pip --require-hashes). `make lock` re-pins them with
# uv's universal resolver (markers kept: Debian's Python 3.11.2 needs what 3.11.7 does not):
# images/requirements.txt from pyproject.toml's dependencies (pins already there are kept while they
# satisfy it; `make lock LOCK_ARGS=--upgrade` moves them) and images/build-requirements.txt from its .in.
UV_VERSION := 0.13.10
LOCK_ARGS ?=
lock:  ## re-pins images/requirements.txt and images/build-requirements.txt with hashes
	@[ -x $(CACHE)/uv/bin/uv ] && [ "$$($(CACHE)/uv/bin/uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] || \
	  { rm -rf $(CACHE)/uv && $(PYTHON) -m venv $(CACHE)/uv && $(CACHE)/uv/bin/pip install -q uv==$(UV_VERSION); } || exit 1
	@for pair in "images/requirements.txt pyproject.toml" "images/build-requirements.txt images/build-requirements.in"; do \
	  set -- $$pair; $(CACHE)/uv/bin/uv pip compile -q --universal --python-version 3.11 --generate-hashes \
	    --no-emit-index-url --no-emit-find-links --custom-compile-command "make lock" $(LOCK_ARGS) -o $$1 $$2 || exit 1; done

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

bench-api: deps venv kafka  ## the HTTP submit path at 1-256 concurrent clients, with each Kafka client
	PYTHONPATH=. $(PY) -m bench.api_load

bench-flow: deps venv kafka  ## rate limit accuracy beside unlimited work, high-priority waits behind a backlog
	PYTHONPATH=. $(PY) -m bench.flow $(BENCH_FLOW_ARGS)

bench-redis: deps venv  ## Redis bytes per finished task (record, indexes, events), for sizing
	PYTHONPATH=. $(PY) -m bench.redis_footprint

soak: deps venv kafka  ## an hour at 200 tasks/s with a worker restart every 10 min: RSS, fds, threads, Redis, p99 wait
	PYTHONPATH=. $(PY) -m bench.soak $(SOAK_ARGS)

chaos: deps venv kafka  ## the long chaos run: 10,000 tasks through kills and restarts
	$(PY) -m tests.chaos.run --tasks 10000

# The worker fuzz against real Kafka for longer than make test runs it, with each Kafka client:
# FUZZ_EXAMPLES generated batches of 40-60 poison messages and 20-30 valid tasks each.
FUZZ_EXAMPLES ?= 100
fuzz: deps venv kafka  ## the worker fuzz on real Kafka, FUZZ_EXAMPLES batches per Kafka client (not in make test)
	TASKQ_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) TASKQ_API_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest \
	  tests/integration/test_fuzz_worker.py tests/unit/test_wire_fuzz.py tests/integration/test_api_fuzz.py \
	  --timeout=0 $(PYTEST_ARGS); rc=$$?; [ $$rc -ne 5 ] || { echo "pytest collected no tests: failing"; exit 1; }; exit $$rc

clean:
	rm -rf .taskq .pytest_cache .mypy_cache .ruff_cache

# The single-node Kubernetes cluster for the e2e suite (make cluster, cluster-down, cluster-images).
-include tools/cluster/cluster.mk
# The custom resources' JSON schemas the chart test validates against (make crds).
-include tools/crds/crds.mk
