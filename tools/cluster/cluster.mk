# The single-node Kubernetes cluster (v1.37.2) the e2e suite runs on; see tools/cluster/up.sh.
#   make cluster          builds the binaries once (~8 min cold), starts the cluster, prints KUBECONFIG
#   make cluster-down     stops it and leaves the host as it was
#   make cluster-images   imports taskq-api/worker/kafka/redis:e2e into the cluster's containerd
#   make cluster-keda     installs KEDA (operator, metrics API server, CRDs) into the running cluster
#   make cluster-metrics-server   installs metrics-server (CPU metrics for a HorizontalPodAutoscaler)
#   make cluster-prometheus-bin   builds Prometheus 3 with Kubernetes service discovery
CLUSTER_DIR := $(CACHE)/cluster
CLUSTER_BIN := $(CLUSTER_DIR)/bin
COREDNS_VERSION := v1.15.0
# kube-router's network policy controller enforces NetworkPolicy beside the bridge CNI (the e2e
# proves the chart's policies with it). v2.1.0 is the version the Go module proxy serves; it runs
# only inside the throwaway cluster's network namespace. kube-network-policies v0.8.0 builds but
# cannot work here: its rules need nftables' queue expression, and this kernel has no CONFIG_NFT_QUEUE.
KUBE_ROUTER_VERSION := v2.1.0
CLUSTER_PKGS := containerd runc containernetworking-plugins iptables ipset conntrack socat gcc libc6-dev curl openssl
export TASKQ_CLUSTER_DIR := $(CLUSTER_DIR)

.PHONY: cluster cluster-down cluster-images cluster-deps cluster-bin cluster-autoscalers-bin cluster-keda cluster-metrics-server \
	cluster-prometheus-bin cluster-ingress-bin

cluster-deps:
	@tools/need.sh containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
	  iptables:iptables ipset:ipset conntrack:conntrack socat:socat gcc:gcc /usr/include/stdio.h:libc6-dev curl:curl \
	  openssl:openssl

# The binary is rebuilt when the scratch module changes (a version bump edits go.mod and go.sum).
$(CLUSTER_BIN)/k8s: tools/cluster/k8s/go.mod tools/cluster/k8s/go.sum tools/cluster/k8s/main.go tools/cluster/build-k8s.sh
	@echo "building Kubernetes (kube-*, kubelet, etcd, kubectl) into $(CLUSTER_BIN); about 8 min the first time"
	@tools/cluster/build-k8s.sh $(CLUSTER_BIN)

$(CLUSTER_BIN)/coredns:
	@echo "building CoreDNS $(COREDNS_VERSION) into $(CLUSTER_BIN)"
	@GOBIN=$(CLUSTER_BIN) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" github.com/coredns/coredns@$(COREDNS_VERSION)

cluster-bin: $(CLUSTER_BIN)/k8s $(CLUSTER_BIN)/coredns $(CLUSTER_BIN)/traefik $(CLUSTER_BIN)/kube-router-$(KUBE_ROUTER_VERSION)

# The version is in the file name, so a new one rebuilds; addons.sh runs the newest built.
$(CLUSTER_BIN)/kube-router-$(KUBE_ROUTER_VERSION):
	@echo "building kube-router $(KUBE_ROUTER_VERSION) into $(CLUSTER_BIN)"
	@tmp=$$(mktemp -d) && GOBIN=$$tmp CGO_ENABLED=0 go install -trimpath \
	  -ldflags "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$(KUBE_ROUTER_VERSION)" \
	  github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$(KUBE_ROUTER_VERSION) && \
	  mv $$tmp/kube-router $@ && ln -sf $(@F) $(CLUSTER_BIN)/kube-router; rc=$$?; rm -rf $$tmp; exit $$rc

# The autoscalers: KEDA from the pinned scratch module tools/cluster/keda (its own go.mod has a
# replace directive, so it cannot be go-installed), metrics-server go-installed as it is.
KEDA_VERSION := $(shell awk '$$1 == "github.com/kedacore/keda/v2" {print $$2}' tools/cluster/keda/go.mod)
METRICS_SERVER_VERSION := v0.9.0
export KEDA_VERSION METRICS_SERVER_VERSION
$(CLUSTER_BIN)/keda-operator: tools/cluster/keda/go.mod tools/cluster/keda/go.sum tools/cluster/build-keda.sh
	@echo "building KEDA $(KEDA_VERSION) (operator, metrics API server) into $(CLUSTER_BIN); about 25 min the first time"
	@tools/cluster/build-keda.sh $(CLUSTER_BIN)

$(CLUSTER_BIN)/metrics-server:
	@echo "building metrics-server $(METRICS_SERVER_VERSION) into $(CLUSTER_BIN)"
	@GOBIN=$(CLUSTER_BIN) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w \
	  -X k8s.io/client-go/pkg/version.gitVersion=$(METRICS_SERVER_VERSION)" \
	  sigs.k8s.io/metrics-server/cmd/metrics-server@$(METRICS_SERVER_VERSION)

cluster-autoscalers-bin: $(CLUSTER_BIN)/keda-operator $(CLUSTER_BIN)/metrics-server

cluster-keda: cluster-autoscalers-bin
	@tools/cluster/addons.sh keda

cluster-metrics-server: cluster-autoscalers-bin
	@tools/cluster/addons.sh metrics-server

# Prometheus with kubernetes_sd_configs (Debian's has none), for tests/e2e/test_prometheus_sd.py.
# v0.316.0 is the Go module version of Prometheus 3.16.0.
PROMETHEUS_MODULE_VERSION := v0.316.0
export PROMETHEUS_MODULE_VERSION
$(CLUSTER_BIN)/prometheus: tools/cluster/build-prometheus.sh
	@echo "building Prometheus $(PROMETHEUS_MODULE_VERSION) (file + Kubernetes discovery) into $(CLUSTER_BIN)"
	@tools/cluster/build-prometheus.sh $(CLUSTER_BIN)

cluster-prometheus-bin: $(CLUSTER_BIN)/prometheus

# Traefik, the ingress controller the e2e reaches the UI through (tools/cluster/build-traefik.sh).
TRAEFIK_VERSION := v3.6.12
export TRAEFIK_VERSION
# cluster.mk holds TRAEFIK_VERSION: a new version rebuilds.
$(CLUSTER_BIN)/traefik: tools/cluster/build-traefik.sh tools/cluster/cluster.mk
	@echo "building Traefik $(TRAEFIK_VERSION) into $(CLUSTER_BIN); about 11 min the first time"
	@tools/cluster/build-traefik.sh $(CLUSTER_BIN)

cluster-ingress-bin: $(CLUSTER_BIN)/traefik

cluster: cluster-deps cluster-bin
	@tools/cluster/up.sh

cluster-down:
	@tools/cluster/down.sh

cluster-images: kafka
	@$(MAKE) --no-print-directory images IMAGE_TAG=e2e
	@KAFKA_JARS=$(KAFKA_JARS) BASE_IMAGE=$(BASE_IMAGE) tools/cluster/images.sh app
