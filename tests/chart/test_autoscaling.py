"""KEDA reaches Kafka with the workers' own credentials: TriggerAuthentication and trigger metadata."""

from __future__ import annotations

from typing import Any

from tests.chart.helm import docs, find

EXTERNAL = ["--set", "kafka.strimzi.enabled=false", "--set", "kafka.bootstrapServers=k:9093",
            "--set", "autoscaling.keda.enabled=true"]


def trigger(objs: list[dict[str, Any]]) -> dict[str, Any]:
    first: dict[str, Any] = find(objs, "ScaledObject", "rel-worker")["spec"]["triggers"][0]
    return first


def env(objs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    worker = find(objs, "Deployment", "rel-worker")["spec"]["template"]["spec"]["containers"][0]
    return next(e for e in worker["env"] if e["name"] == name)


def test_plain_kafka_needs_no_authentication() -> None:
    objs = docs("--set", "autoscaling.keda.enabled=true", "--set", "kafka.strimzi.tls=false")
    assert "authenticationRef" not in trigger(objs)
    assert not {"sasl", "tls"} & trigger(objs)["metadata"].keys()
    assert not [o for o in objs if o["kind"] == "TriggerAuthentication"]


def test_strimzi_tls_scram_uses_the_user_secret_and_the_cluster_ca() -> None:
    objs = docs("--set", "autoscaling.keda.enabled=true")  # the chart's own Kafka is SCRAM over TLS by default
    t = trigger(objs)
    assert t["metadata"]["bootstrapServers"].endswith(":9093")
    assert t["metadata"]["sasl"] == "scram_sha512" and t["metadata"]["tls"] == "enable"
    assert t["authenticationRef"] == {"name": "rel-worker"}
    auth = find(objs, "TriggerAuthentication", "rel-worker")["spec"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
    assert refs["password"] == (env(objs, "TASKQ_KAFKA_SASL_PASSWORD")["valueFrom"]["secretKeyRef"]["name"], "password")
    worker = find(objs, "Deployment", "rel-worker")["spec"]["template"]["spec"]
    ca_volume = next(v for v in worker["volumes"] if v["name"] == "kafka-ca")
    assert refs["ca"] == (ca_volume["secret"]["secretName"], "ca.crt")
    assert find(objs, "KafkaUser", "rel-taskq-worker")
    assert auth["env"] == [{"parameter": "username", "name": "TASKQ_KAFKA_SASL_USERNAME", "containerName": "worker"}]
    assert env(objs, "TASKQ_KAFKA_SASL_USERNAME")["value"] == "rel-taskq-worker"
    assert refs["password"] == ("rel-taskq-worker", "password")


def test_external_sasl_uses_the_sasl_secret() -> None:
    mechanisms = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}
    for mechanism, sasl in mechanisms.items():
        objs = docs(*EXTERNAL, "--set", "kafka.securityProtocol=SASL_PLAINTEXT",
                    "--set", f"kafka.saslMechanism={mechanism}", "--set", "kafka.saslSecret=creds")
        assert trigger(objs)["metadata"]["sasl"] == sasl and "tls" not in trigger(objs)["metadata"]
        auth = find(objs, "TriggerAuthentication", "rel-worker")["spec"]
        assert auth["secretTargetRef"] == [
            {"parameter": "username", "name": "creds", "key": "username"},
            {"parameter": "password", "name": "creds", "key": "password"},
        ]


def test_external_tls_without_sasl_enables_tls_only() -> None:
    objs = docs(*EXTERNAL, "--set", "kafka.securityProtocol=SSL")
    assert trigger(objs)["metadata"]["tls"] == "enable" and "sasl" not in trigger(objs)["metadata"]
    assert "authenticationRef" not in trigger(objs)


def test_keda_reaches_a_bare_service_name_from_its_own_namespace() -> None:
    # KEDA's operator runs in its own namespace: `kafka:9092` would resolve there, not here.
    objs = docs("--set", "kafka.strimzi.enabled=false", "--set", r"kafka.bootstrapServers=kafka:9092\, kafka-2:9092",
                "--set", "autoscaling.keda.enabled=true")
    assert trigger(objs)["metadata"]["bootstrapServers"] == "kafka.jobs.svc:9092,kafka-2.jobs.svc:9092"
    assert env(objs, "TASKQ_KAFKA_BOOTSTRAP")["value"] == "kafka:9092, kafka-2:9092"
    for given in ("kafka.other.svc:9092", "10.0.0.7:9092", "localhost:9092", "broker.example.org:9093"):
        objs = docs("--set", "kafka.strimzi.enabled=false", "--set", f"kafka.bootstrapServers={given}",
                    "--set", "autoscaling.keda.enabled=true")
        assert trigger(objs)["metadata"]["bootstrapServers"] == given
    objs = docs("--set", "autoscaling.keda.enabled=true")
    assert trigger(objs)["metadata"]["bootstrapServers"] == "rel-taskq-kafka-kafka-bootstrap.jobs.svc:9093"


def test_scale_down_behavior_reaches_the_hpa_of_keda_and_the_cpu_hpa() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    objs = docs("--set", "autoscaling.keda.enabled=true",
                "--set", "autoscaling.keda.behavior.scaleDown.stabilizationWindowSeconds=30")
    spec = find(objs, "ScaledObject", "rel-worker")["spec"]
    assert spec["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    assert "advanced" not in find(docs("--set", "autoscaling.keda.enabled=true"), "ScaledObject")["spec"]
    objs = docs("--set", "autoscaling.hpa.enabled=true",
                "--set", "autoscaling.hpa.behavior.scaleDown.stabilizationWindowSeconds=30")
    assert find(objs, "HorizontalPodAutoscaler", "rel-worker")["spec"]["behavior"] == behavior
    assert "behavior" not in find(docs("--set", "autoscaling.hpa.enabled=true"), "HorizontalPodAutoscaler")["spec"]


def test_each_component_signs_in_as_its_own_kafka_user_with_only_the_rights_it_needs() -> None:
    objs = docs("--set", "config.priorityLanes=true")
    users = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "KafkaUser"}
    assert set(users) == {"rel-taskq-api", "rel-taskq-worker"}
    for component in ("api", "worker"):
        pod = find(objs, "Deployment", f"rel-{'taskq-api' if component == 'api' else 'worker'}")
        container = pod["spec"]["template"]["spec"]["containers"][0]
        values = {e["name"]: e.get("value") or e["valueFrom"].get("secretKeyRef") for e in container["env"]}
        assert values["TASKQ_KAFKA_SASL_USERNAME"] == f"rel-taskq-{component}"
        assert values["TASKQ_KAFKA_SASL_PASSWORD"] == {"name": f"rel-taskq-{component}", "key": "password"}
        assert values["TASKQ_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"

    def rights(user: str) -> dict[tuple[str, str], set[str]]:
        return {(a["resource"]["type"], a["resource"].get("name", "")): set(a["operations"])
                for a in users[user]["authorization"]["acls"]}

    api, worker = rights("rel-taskq-api"), rights("rel-taskq-worker")
    # The prefix covers the priority lanes' topics (taskq.tasks.high, .low) and groups (<group>.high).
    assert all(a["resource"]["patternType"] == "prefix" for a in users["rel-taskq-worker"]["authorization"]["acls"]
               if a["resource"]["type"] == "group" or a["resource"].get("name") == "taskq.tasks")
    assert "Read" not in api[("topic", "taskq.tasks")] and "Read" not in api[("group", "taskq-workers")]
    assert {"Read", "Write"} <= worker[("topic", "taskq.tasks")] and "Read" in worker[("group", "taskq-workers")]
    assert "Read" not in worker[("topic", "taskq.dead")]  # dead letters are read by the API (the console)
    assert "Read" in api[("topic", "taskq.dead")]
    assert not [ops for ops in (*api.values(), *worker.values()) if {"All", "Alter", "Delete"} & ops]
    plain = docs("--set", "kafka.strimzi.tls=false")
    assert not [o for o in plain if o["kind"] == "KafkaUser"]
