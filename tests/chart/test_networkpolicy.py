"""NetworkPolicies: who may reach the API and the worker metrics, and where the pods may connect."""

from __future__ import annotations

import json
from typing import Any

from tests.chart.helm import docs, find

MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}


def policies(*args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    objs = docs("--set", "networkPolicy.enabled=true", *args)
    return find(objs, "NetworkPolicy", "rel-taskq-api")["spec"], find(objs, "NetworkPolicy", "rel-worker")["spec"]


def test_no_policy_by_default() -> None:
    assert not [o for o in docs() if o["kind"] == "NetworkPolicy"]


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

