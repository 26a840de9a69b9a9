"""The Helm chart: lint, render every scenario, validate against Kubernetes and CRD schemas, and
check what users rely on (names, selectors, grace periods, security, metrics the dashboard uses)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from taskq.metrics import ApiMetrics, WorkerMetrics
from taskq.settings import Settings
from tests.chart.helm import (
    CHART,
    CRD_SCHEMAS,
    E2E_VALUES,
    K8S_VERSION,
    SCENARIOS,
    docs,
    find,
    render,
    tool,
)

BUILTIN_GROUPS = ("v1", "apps/", "policy/", "networking.k8s.io/", "autoscaling/")


def test_chart_lints_strictly_with_every_scenario() -> None:
    for values in [None, *SCENARIOS, *E2E_VALUES]:
        args = ["-f", str(values)] if values else []
        res = subprocess.run([tool("helm"), "lint", "--strict", str(CHART), *args], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="session")
def k8s_schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubernetes-validate's schemas in kubeconform's layout, made resolvable offline.

    Each schema carries ``$id: https://kubernetes.io/...`` and refs ``/api/_definitions.json``, which
    kubeconform would resolve against kubernetes.io; drop the ids and make the refs file-relative.
    """
    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    dst = tmp_path_factory.mktemp("k8s-schemas")
    for f in src.glob("*.json"):
        schema = json.loads(f.read_text())
        schema.pop("$id", None)
        (dst / f.name).write_text(json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#'))
    return dst


@pytest.mark.parametrize("scenario", SCENARIOS + E2E_VALUES, ids=lambda p: p.stem)
def test_every_scenario_renders_objects_kubeconform_accepts(scenario: Path, k8s_schemas: Path, tmp_path: Path) -> None:
    if not CRD_SCHEMAS.is_dir():
        pytest.fail(f"CRD schemas not found at {CRD_SCHEMAS}: run 'make crds'")
    objs = docs("-f", str(scenario))
    # Every custom resource is checked against its CRD's schema: none may go unvalidated.
    missing: set[str] = set()
    for o in objs:
        if not o["apiVersion"].startswith(BUILTIN_GROUPS):
            group, _, version = o["apiVersion"].rpartition("/")
            if not (CRD_SCHEMAS / group / f"{o['kind'].lower()}_{version}.json").is_file():
                missing.add(f"{group}/{o['kind'].lower()}_{version}.json")
    assert not missing, f"no schema in {CRD_SCHEMAS} for {', '.join(sorted(missing))}: run 'make crds'"
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objs))
    res = subprocess.run(
        [tool("kubeconform"), "-strict", "-summary",
         "-schema-location", str(k8s_schemas) + "/{{.ResourceKind}}{{.KindSuffix}}.json",
         "-schema-location", str(CRD_SCHEMAS) + "/{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json",
         str(rendered)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"Valid: {len(objs)}," in res.stdout, res.stdout


def test_selectors_match_the_pod_labels() -> None:
    objs = docs("-f", str(CHART / "ci" / "everything-values.yaml"))
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    pods = {o["metadata"]["name"]: o["spec"]["template"]["metadata"]["labels"] for o in deployments}
    for o in objs:
        if o["kind"] == "Deployment":
            sel = o["spec"]["selector"]["matchLabels"]
            assert sel.items() <= o["spec"]["template"]["metadata"]["labels"].items()
        if o["kind"] in ("PodDisruptionBudget", "Service"):
            sel = o["spec"]["selector"].get("matchLabels", o["spec"]["selector"])
            assert any(sel.items() <= labels.items() for labels in pods.values()), o["metadata"]["name"]
    keda = find(objs, "ScaledObject")
    assert keda["spec"]["scaleTargetRef"]["name"] == "rel-worker"


def test_worker_deployment_name_is_stable_for_kubectl_scale() -> None:
    for args in ([], ["--set", "nameOverride=x"]):
        objs = docs(*args, release="prod")
        assert find(objs, "Deployment", "prod-worker")["spec"]["replicas"] == 3


def test_fullname_override_renames_the_api_and_the_worker_alike() -> None:
    objs = docs("-f", str(CHART / "ci" / "everything-values.yaml"), "--set", "fullnameOverride=foo", release="prod")
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {("Deployment", "foo-api"), ("Deployment", "foo-worker"), ("Service", "foo-api"),
            ("ScaledObject", "foo-worker"), ("TriggerAuthentication", "foo-worker"),
            ("NetworkPolicy", "foo-worker"), ("PodMonitor", "foo-worker")} <= names
    assert not [n for _, n in names if n.startswith("prod-")]
    keda = find(objs, "ScaledObject", "foo-worker")
    assert keda["spec"]["scaleTargetRef"]["name"] == "foo-worker"
    assert keda["spec"]["triggers"][0]["authenticationRef"]["name"] == "foo-worker"
    long = docs("--set", "fullnameOverride=" + "x" * 63)
    assert all(len(o["metadata"]["name"]) <= 63 for o in long if o["kind"] in ("Service", "Deployment"))
    assert find(long, "Deployment", "x" * 56 + "-worker")


def test_worker_grace_exceeds_the_shutdown_grace() -> None:
    objs = docs()
    worker = find(objs, "Deployment", "rel-worker")
    cm = find(objs, "ConfigMap", "rel-taskq")
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(cm["data"]["TASKQ_SHUTDOWN_GRACE"])
    res = render("--set", "worker.shutdownGrace=40", check=False)
    assert res.returncode != 0 and "terminationGracePeriodSeconds must exceed worker.shutdownGrace" in res.stderr


def test_containers_have_probes_and_a_locked_down_security_context() -> None:
    for o in docs():
        if o["kind"] != "Deployment":
            continue
        spec = o["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] in ("/readyz", "/healthz")
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
            assert c["resources"]["requests"]


def test_strimzi_topic_partitions_equal_the_app_setting() -> None:
    objs = docs("--set", "config.partitions=24")
    topic = find(objs, "KafkaTopic", "rel-taskq-tasks")
    cm = find(objs, "ConfigMap", "rel-taskq")
    assert topic["spec"]["partitions"] == 24 == int(cm["data"]["TASKQ_PARTITIONS"])
    assert topic["spec"]["topicName"] == cm["data"]["TASKQ_TASKS_TOPIC"]


def test_priority_lanes_get_their_topics_and_the_setting_only_when_enabled() -> None:
    off = docs()
    assert [o["spec"]["topicName"] for o in off if o["kind"] == "KafkaTopic"] == ["taskq.tasks", "taskq.dead"]
    assert find(off, "ConfigMap", "rel-taskq")["data"]["TASKQ_PRIORITY_LANES"] == "false"
    on = docs("--set", "config.priorityLanes=true", "--set", "config.partitions=6")
    topics = {o["spec"]["topicName"]: o["spec"]["partitions"] for o in on if o["kind"] == "KafkaTopic"}
    assert topics == {"taskq.tasks": 6, "taskq.tasks.high": 6, "taskq.tasks.low": 6, "taskq.dead": 1}
    cm = find(on, "ConfigMap", "rel-taskq")
    assert cm["data"]["TASKQ_PRIORITY_LANES"] == "true"
    assert sorted(Settings(priority_lanes=True).lane_topics()) == sorted(t for t in topics if t != "taskq.dead")


def test_every_taskq_variable_the_chart_sets_is_a_real_setting() -> None:
    fields = {f"TASKQ_{name.upper()}" for name in Settings.model_fields} | {"TASKQ_WORKER_ID"}
    for scenario in SCENARIOS:
        text = render("-f", str(scenario)).stdout
        for var in set(re.findall(r"\bTASKQ_[A-Z_]+", text)):
            assert var in fields, f"{scenario.stem}: {var} is not a setting"


@pytest.mark.parametrize("scenario", [None, *SCENARIOS], ids=lambda s: "defaults" if s is None else s.stem)
def test_the_configmap_is_settings_the_app_accepts(scenario: Path | None, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    # A values file, not --set: Helm reads YAML numbers as float64 (--set ones as int64).
    big = tmp_path / "big.yaml"
    big.write_text("config: {maxBodyBytes: 10485760, resultTtl: 31536000, taskMemoryLimit: 512Mi, maxLostRuns: 1}\n")
    objs = docs(*(["-f", str(scenario)] if scenario else []), "-f", str(big))
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "TASKQ_PARTITIONS" in o.get("data", {}))
    for name, value in cm["data"].items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.max_body_bytes == 10485760 and settings.result_ttl == 31536000
    assert settings.task_memory_limit == 512 * 2**20 and settings.max_lost_runs == 1


def test_secrets_never_land_in_the_configmap() -> None:
    objs = docs("--set", "api.auth.token=supersecret-token")
    cm = find(objs, "ConfigMap", "rel-taskq")
    assert "supersecret" not in yaml.safe_dump(cm)
    api = find(objs, "Deployment", "rel-taskq-api")["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in api["env"] if e["name"] == "TASKQ_API_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_the_read_only_token_comes_from_the_token_secret_when_asked_for() -> None:
    import base64

    def read_env(objs: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        api = find(objs, "Deployment", "rel-taskq-api")["spec"]["template"]["spec"]["containers"][0]
        return [e for e in api["env"] if e["name"] == "TASKQ_API_READ_TOKEN"]

    plain = docs()
    assert read_env(plain) == [] and "read-token" not in find(plain, "Secret", "rel-taskq-api-token")["data"]
    generated = docs("--set", "api.auth.readOnly=true")
    env = read_env(generated)
    assert env == [{"name": "TASKQ_API_READ_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": "rel-taskq-api-token", "key": "read-token"}}}]
    data = find(generated, "Secret", "rel-taskq-api-token")["data"]
    assert len(base64.b64decode(data["read-token"])) == 40 and data["read-token"] != data["token"]
    given = docs("--set", "api.auth.readOnly=true", "--set", "api.auth.readToken=look-dont-touch")
    assert base64.b64decode(find(given, "Secret", "rel-taskq-api-token")["data"]["read-token"]) == b"look-dont-touch"
    assert "look-dont-touch" not in yaml.safe_dump(find(given, "ConfigMap", "rel-taskq"))
    # With an existing Secret, its key read-token is used (and required).
    existing = docs("--set", "api.auth.readOnly=true", "--set", "api.auth.existingSecret=mine")
    assert read_env(existing)[0]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "read-token"}
    assert not [o for o in existing if o["kind"] == "Secret" and o["metadata"]["name"] == "rel-taskq-api-token"]


@pytest.mark.parametrize("auth", [True, False])
def test_the_api_the_chart_renders_is_never_open_by_accident(auth: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskq.api.exposure import check_exposure

    objs = docs("--set", f"api.auth.enabled={str(auth).lower()}", "--set", "api.auth.token=a-token")
    api = find(objs, "Deployment", "rel-taskq-api")["spec"]["template"]["spec"]["containers"][0]
    host = api["args"][api["args"].index("--host") + 1]
    for name, value in find(objs, "ConfigMap", "rel-taskq")["data"].items():
        monkeypatch.setenv(name, value)
    env = {e["name"]: e for e in api["env"]}
    if auth:
        assert "TASKQ_API_AUTH" not in env and env["TASKQ_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"
        monkeypatch.setenv("TASKQ_API_TOKEN", "a-token")  # what the Secret holds
        assert check_exposure(Settings(), host, 8000) is None
    else:
        # Serving without a token is said twice: in the values and by the API at start.
        assert "TASKQ_API_TOKEN" not in env and env["TASKQ_API_AUTH"]["value"] == "none"
        monkeypatch.setenv("TASKQ_API_AUTH", "none")
        warning = check_exposure(Settings(), host, 8000)
        assert warning and "without a token" in warning


def test_the_api_metrics_have_a_port_of_their_own_that_the_ingress_never_routes() -> None:
    def wiring(*args: str) -> tuple[dict, dict, dict, dict, dict]:  # type: ignore[type-arg]
        objs = docs("--set", "metrics.serviceMonitor.enabled=true", "--set", "api.ingress.enabled=true", *args)
        pod = find(objs, "Deployment", "rel-taskq-api")["spec"]["template"]
        return (pod, find(objs, "Service", "rel-taskq-api"), find(objs, "ServiceMonitor", "rel-taskq-api"),
                find(objs, "Ingress", "rel-taskq"), pod["spec"]["containers"][0])

    pod, svc, sm, ingress, api = wiring()
    assert {p["name"]: p["containerPort"] for p in api["ports"]} == {"http": 8000, "metrics": 9100}
    assert {e["name"]: e.get("value") for e in api["env"]}["TASKQ_API_METRICS_PORT"] == "9100"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {"http": "http", "metrics": "metrics"}
    backends = [p["backend"]["service"]["port"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends and all(b == {"name": "http"} for b in backends), backends
    # null: /metrics on the API's port, as before.
    pod, svc, sm, _, api = wiring("--set", "api.metricsPort=null")
    assert [p["name"] for p in api["ports"]] == [p["name"] for p in svc["spec"]["ports"]] == ["http"]
    assert "TASKQ_API_METRICS_PORT" not in {e["name"] for e in api["env"]}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8000"
    assert sm["spec"]["endpoints"][0]["port"] == "http"


def test_the_ingress_controllers_addresses_are_the_trusted_proxies_when_given() -> None:
    def env(*args: str) -> dict[str, str]:
        api = find(docs(*args), "Deployment", "rel-taskq-api")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in api["env"]}

    assert "TASKQ_API_TRUSTED_PROXIES" not in env()  # the API's own default: 127.0.0.1
    given = env("--set", "api.trustedProxies=10.42.0.0/16")["TASKQ_API_TRUSTED_PROXIES"]
    assert Settings(api_trusted_proxies=given).api_trusted_proxies == "10.42.0.0/16"


def test_behind_the_tls_ingress_the_session_cookie_is_secure() -> None:
    def env(objs: list[dict]) -> dict[str, str]:  # type: ignore[type-arg]
        api = find(objs, "Deployment", "rel-taskq-api")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", "") for e in api["env"]}

    assert "TASKQ_API_COOKIE_SECURE" not in env(docs("--set", "api.ingress.enabled=true"))
    tls = docs("--set", "api.ingress.enabled=true", "--set", "api.ingress.host=q.example.com",
               "--set", "api.ingress.tlsSecret=q-tls")
    assert env(tls)["TASKQ_API_COOKIE_SECURE"] == "true"


def test_the_schema_rejects_a_misspelled_value() -> None:
    res = render("--set", "worker.concurency=8", check=False)
    assert res.returncode != 0 and "additional properties 'concurency' not allowed" in res.stderr
    res = render("--set", "kafka.securityProtocol=TLS", check=False)
    assert res.returncode != 0


def test_autoscaling_guards() -> None:
    res = render("--set", "autoscaling.keda.enabled=true", "--set", "autoscaling.keda.maxReplicas=20", check=False)
    assert res.returncode != 0 and "cannot exceed config.partitions" in res.stderr
    res = render("--set", "autoscaling.keda.enabled=true", "--set", "autoscaling.hpa.enabled=true", check=False)
    assert res.returncode != 0 and "not both" in res.stderr
    keda = docs("--set", "autoscaling.keda.enabled=true")
    assert "replicas" not in find(keda, "Deployment", "rel-worker")["spec"]


def test_external_kafka_and_redis_need_their_addresses() -> None:
    res = render("--set", "kafka.strimzi.enabled=false", check=False)
    assert res.returncode != 0 and "kafka.bootstrapServers is required" in res.stderr


def _exported_metric_names() -> set[str]:
    names: set[str] = set()
    for registry in (WorkerMetrics(worker="w").registry, ApiMetrics().exposition):
        for family in registry.collect():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
            else:
                names.add(family.name)
    return names


def test_dashboard_and_alerts_only_use_metrics_the_code_exports() -> None:
    exported = _exported_metric_names()
    dashboard = json.loads((CHART / "dashboards" / "taskq.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 10
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"namespace", "task"}
    rule = find(docs("--set", "metrics.prometheusRule.enabled=true"), "PrometheusRule")
    exprs += [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in re.findall(r"\btaskq_[a-z_]+", e)}
    assert used, "no taskq metric referenced"
    missing = used - exported
    assert not missing, f"panels or alerts use metrics the code does not export: {sorted(missing)}"
    cm = find(docs(), "ConfigMap", "rel-taskq-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["taskq.json"])["uid"] == "taskq"


def test_the_kafka_client_and_group_protocol_reach_the_configmap() -> None:
    cm = find(docs("--set", "kafka.client=kafka-python", "--set", "kafka.groupProtocol=classic"), "ConfigMap")
    assert cm["data"]["TASKQ_KAFKA_CLIENT"] == "kafka-python" and cm["data"]["TASKQ_GROUP_PROTOCOL"] == "classic"
    default = find(docs(), "ConfigMap")
    assert default["data"]["TASKQ_KAFKA_CLIENT"] == "confluent" and "TASKQ_GROUP_PROTOCOL" not in default["data"]
    assert Settings(kafka_client="confluent", group_protocol="consumer").consumer_group_protocol == "consumer"


def test_kip_848_with_kafka_python_is_refused_at_install() -> None:
    res = render("--set", "kafka.client=kafka-python", "--set", "kafka.groupProtocol=consumer", check=False)
    assert res.returncode != 0 and "client" in res.stderr and "confluent" in res.stderr, res.stderr


def test_strimzi_lets_kip_848_sessions_be_as_short_as_the_workers_session() -> None:
    config = find(docs(), "Kafka")["spec"]["kafka"]["config"]
    assert config["group.consumer.min.session.timeout.ms"] == 1000
    assert config["group.consumer.session.timeout.ms"] == 6000


def test_the_charts_redis_is_capped_and_never_evicts_a_task_record() -> None:
    conf = find(docs(), "ConfigMap", "rel-taskq-redis-config")["data"]["redis-additional.conf"].splitlines()
    assert "maxmemory 768mb" in conf and "maxmemory-policy noeviction" in conf and "appendonly yes" in conf
    for bad in ("", "lots"):  # the schema's pattern says so before the template's `required` would
        res = render("--set", f"redis.operator.maxmemory={bad}", check=False)
        assert res.returncode != 0 and "/redis/operator/maxmemory" in res.stderr, res.stderr


def test_redis_over_tls_uses_rediss_and_checks_the_certificate_against_the_secrets_ca() -> None:
    def wiring(*args: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        objs = docs(*args)
        worker = find(objs, "Deployment", "rel-worker")["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in worker["containers"][0]["env"]}
        return env, worker, objs

    env, worker, objs = wiring()
    assert env["TASKQ_REDIS_URL"].startswith("redis://") and "TASKQ_REDIS_SSL_CAFILE" not in env
    assert "TLS" not in find(objs, "Redis")["spec"]
    env, worker, objs = wiring("--set", "redis.operator.tlsSecret=redis-cert")
    assert env["TASKQ_REDIS_URL"] == "rediss://rel-taskq-redis:6379/0"
    assert env["TASKQ_REDIS_SSL_CAFILE"] == "/etc/taskq/redis-ca/ca.crt"
    volume = next(v for v in worker["volumes"] if v["name"] == "redis-ca")
    assert volume["secret"] == {"secretName": "redis-cert", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    mount = next(m for m in worker["containers"][0]["volumeMounts"] if m["name"] == "redis-ca")
    assert env["TASKQ_REDIS_SSL_CAFILE"].startswith(mount["mountPath"])
    assert find(objs, "Redis")["spec"]["TLS"] == {"ca": "ca.crt", "cert": "tls.crt", "key": "tls.key",
                                                  "secret": {"secretName": "redis-cert"}}
    # An existing Redis over TLS: its URL as given, its CA from redis.caSecret.
    env, _, _ = wiring("--set", "redis.operator.enabled=false", "--set", "redis.url=rediss://r.example:6380/0",
                       "--set", "redis.caSecret=r-ca")
    assert env["TASKQ_REDIS_URL"] == "rediss://r.example:6380/0"
    assert env["TASKQ_REDIS_SSL_CAFILE"] == "/etc/taskq/redis-ca/ca.crt"
