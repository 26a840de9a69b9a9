"""NetworkPolicies: who may reach the API and the worker metrics, and where the pods may connect."""

from __future__ import annotations

import json
from typing import Any

from tests.chart.helm import docs, find

MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}


def policies(*args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    objs = docs(*args)
    return find(objs, "NetworkPolicy", "rel-taskq-api")["spec"], find(objs, "NetworkPolicy", "rel-worker")["spec"]


RELEASE_PODS = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "taskq",
                                                "app.kubernetes.io/instance": "rel"}}}
KEDA = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}


def test_every_component_has_a_policy_by_default_and_it_can_be_turned_off() -> None:
    names = sorted(o["metadata"]["name"] for o in docs() if o["kind"] == "NetworkPolicy")
    assert names == ["rel-taskq-api", "rel-taskq-redis", "rel-worker"]
    # The chart's Kafka: Strimzi makes the listener's policy from its networkPolicyPeers.
    listener = find(docs(), "Kafka")["spec"]["kafka"]["listeners"][0]
    assert listener["networkPolicyPeers"] == [RELEASE_PODS]
    off = docs("--set", "networkPolicy.enabled=false")
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]
    assert "networkPolicyPeers" not in find(off, "Kafka")["spec"]["kafka"]["listeners"][0]


def test_only_the_release_pods_and_the_given_peers_reach_kafka_and_redis() -> None:
    objs = docs("--set-json", f"networkPolicy.kafkaFrom=[{json.dumps(KEDA)}]",
                "--set-json", f"networkPolicy.redisFrom=[{json.dumps(MONITORING)}]")
    assert find(objs, "Kafka")["spec"]["kafka"]["listeners"][0]["networkPolicyPeers"] == [RELEASE_PODS, KEDA]
    redis = find(objs, "NetworkPolicy", "rel-taskq-redis")["spec"]
    redis_cr = find(objs, "Redis")
    # The labels the redis-operator puts on the pods of a standalone Redis named like the CR.
    assert redis["podSelector"]["matchLabels"] == {"app": redis_cr["metadata"]["name"],
                                                   "redis_setup_type": "standalone"}
    assert redis["ingress"] == [{"ports": [{"port": 6379, "protocol": "TCP"}], "from": [RELEASE_PODS, MONITORING]}]
    for component in ("api", "worker"):
        pod = find(objs, "Deployment", "rel-taskq-api" if component == "api" else "rel-worker")
        labels = pod["spec"]["template"]["metadata"]["labels"]
        assert RELEASE_PODS["podSelector"]["matchLabels"].items() <= labels.items(), component
    # An external Redis and Kafka are the user's to protect: no policy selects them here.
    external = docs("--set", "redis.operator.enabled=false", "--set", "redis.url=redis://r:6379/0")
    assert "rel-taskq-redis" not in {o["metadata"]["name"] for o in external if o["kind"] == "NetworkPolicy"}


def test_default_policies_admit_any_source_on_the_served_ports_only() -> None:
    api, worker = policies()
    assert api["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]},
                              {"ports": [{"port": 9100, "protocol": "TCP"}]}]  # the API's own metrics port
    assert worker["ingress"] == [{"ports": [{"port": 9100, "protocol": "TCP"}]}]
    api_port_only, _ = policies("--set", "api.metricsPort=null")
    assert api_port_only["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}]
    assert api["policyTypes"] == worker["policyTypes"] == ["Ingress"]
    assert worker["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"


def test_metrics_from_limits_the_metrics_ports_to_the_scrapers() -> None:
    api, worker = policies("--set-json", f"networkPolicy.metricsFrom=[{json.dumps(MONITORING)}]")
    assert worker["ingress"] == [{"ports": [{"port": 9100, "protocol": "TCP"}], "from": [MONITORING]}]
    assert "from" not in api["ingress"][0]
    assert api["ingress"][1] == {"ports": [{"port": 9100, "protocol": "TCP"}], "from": [MONITORING]}


def test_api_from_keeps_the_release_pods_and_the_scrapers() -> None:
    api, _ = policies("--set-json", f"networkPolicy.apiFrom=[{json.dumps(INGRESS_NGINX)}]",
                      "--set-json", f"networkPolicy.metricsFrom=[{json.dumps(MONITORING)}]")
    release_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "taskq",
                                                    "app.kubernetes.io/instance": "rel"}}}
    assert api["ingress"][0]["from"] == [INGRESS_NGINX, release_pods, MONITORING]
    test_pod = find(docs(), "Pod", "rel-taskq-test-submit")
    assert release_pods["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()


def test_egress_allows_dns_kafka_redis_and_the_extra_rules() -> None:
    extra = {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"port": 9094}]}
    for spec in policies("--set", "networkPolicy.egress.enabled=true",
                         "--set-json", f"networkPolicy.egress.extraRules=[{json.dumps(extra)}]"):
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        dns, in_namespace, *rest = spec["egress"]
        assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
        assert in_namespace["to"] == [{"podSelector": {}}]
        assert {p["port"] for p in in_namespace["ports"]} == {9092, 9093, 6379}
        assert rest == [extra]

