# JSON schemas of the custom resources the chart renders (Strimzi, KEDA, prometheus-operator,
# redis-operator), for the chart test's kubeconform run: `make crds` writes them to
# $(CACHE)/crd-schemas/{group}/{kind}_{version}.json. Included by the Makefile, which defines CACHE,
# VENV and PY; tools/crds/fetch.py says where each one comes from.
# The versions, pinned here only:
CRDS_KEDA_VERSION := v2.20.2
CRDS_PROMETHEUS_OPERATOR_VERSION := v0.85.0
CRDS_STRIMZI_VERSION := 1.2.0
# No registry serves the OT-Container-Kit redis-operator (nor, without a Java 21+, Strimzi's schemas):
# those are copied from tools/crds/vendored (see its README).
CRDS_FALLBACK ?= $(abspath $(CURDIR)/tools/crds/vendored)

CRD_SCHEMAS := $(CACHE)/crd-schemas
# The stamp names the recipe's content and versions, not its mtime: a fresh clone reuses the cache,
# a changed version or script fetches again, and a rerun is instant. The schemas are made in a
# temporary folder and moved in whole, so a concurrent run never sees half of them.
CRDS_STAMP := $(CRD_SCHEMAS)/.stamp-$(shell { cat tools/crds/crds.mk tools/crds/fetch.py tools/crds/pom.xml; \
  echo $(CRDS_KEDA_VERSION) $(CRDS_PROMETHEUS_OPERATOR_VERSION) $(CRDS_STRIMZI_VERSION); } 2>/dev/null | sha1sum | cut -c1-12)

$(CRDS_STAMP): $(wildcard $(CRDS_FALLBACK)/*/*.json) | $(if $(filter $(VENV)/bin/python,$(PY)),$(VENV)/.stamp)
	@echo "fetching CRD schemas (KEDA $(CRDS_KEDA_VERSION), prometheus-operator $(CRDS_PROMETHEUS_OPERATOR_VERSION), Strimzi $(CRDS_STRIMZI_VERSION)) into $(CRD_SCHEMAS)"
	@test -x "$$(command -v $(PY))" || { echo "error: $(PY) not found: run 'make venv' (or make crds PY=python3 with PyYAML)" >&2; exit 1; }
	@mkdir -p $(CACHE) && tmp=$$(mktemp -d $(CACHE)/crds-fetch.XXXXXX) && \
	  { $(PY) tools/crds/fetch.py --out $$tmp/crd-schemas --keda $(CRDS_KEDA_VERSION) \
	      --prometheus-operator $(CRDS_PROMETHEUS_OPERATOR_VERSION) --strimzi $(CRDS_STRIMZI_VERSION) \
	      $(if $(wildcard $(CRDS_FALLBACK)/.),--fallback $(CRDS_FALLBACK)) \
	    || { rm -rf $$tmp; exit 1; }; } && \
	  touch $$tmp/crd-schemas/$(notdir $(CRDS_STAMP)) && rm -rf $(CRD_SCHEMAS).old && \
	  { [ ! -d $(CRD_SCHEMAS) ] || mv $(CRD_SCHEMAS) $(CRD_SCHEMAS).old; } && mv $$tmp/crd-schemas $(CRD_SCHEMAS) && \
	  rm -rf $$tmp $(CRD_SCHEMAS).old

.PHONY: crds
crds: $(CRDS_STAMP)
