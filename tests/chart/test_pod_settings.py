"""Per-component pod settings of the two Deployments: security contexts, labels, annotations,
scheduling, extra env and volumes, and the image reference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import docs, find, render

DEPLOYMENTS = {"api": "rel-taskq-api", "worker": "rel-worker"}
DIGEST = "sha256:" + "ab" * 32


def pod(objs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    template: dict[str, Any] = find(objs, "Deployment", DEPLOYMENTS[component])["spec"]["template"]
    return template


def container(objs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    first: dict[str, Any] = pod(objs, component)["spec"]["containers"][0]
    return first


def test_default_pod_security_context_is_unchanged() -> None:
    objs = docs()
    for component in DEPLOYMENTS:
        assert pod(objs, component)["spec"]["securityContext"] == {
            "runAsNonRoot": True, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
        assert container(objs, component)["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("component,other", [("api", "worker"), ("worker", "api")])
def test_pod_security_context_is_set_per_component(component: str, other: str) -> None:
    objs = docs("--set", f"{component}.podSecurityContext.fsGroup=2000")
    assert pod(objs, component)["spec"]["securityContext"]["fsGroup"] == 2000
    assert pod(objs, component)["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod(objs, other)["spec"]["securityContext"]["fsGroup"] == 10001


@pytest.mark.parametrize("component,other", [("api", "worker"), ("worker", "api")])
def test_container_security_context_overrides_single_keys_of_the_shared_one(component: str, other: str) -> None:
    objs = docs("--set", f"{component}.securityContext.readOnlyRootFilesystem=false",
                "--set", f"{component}.securityContext.runAsUser=20000")
    sc = container(objs, component)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is False and sc["runAsUser"] == 20000
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    assert container(objs, other)["securityContext"]["readOnlyRootFilesystem"] is True


def test_top_level_security_context_stays_the_default_of_both_containers() -> None:
    objs = docs("--set", "securityContext.runAsUser=4242", "--set", "worker.securityContext.runAsUser=5151")
    assert container(objs, "api")["securityContext"]["runAsUser"] == 4242
    assert container(objs, "worker")["securityContext"]["runAsUser"] == 5151
    test_pod = find(objs, "Pod", "rel-taskq-test-submit")
    assert test_pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 4242


@pytest.mark.parametrize("component", DEPLOYMENTS)
def test_pod_labels_and_annotations_are_added_per_component(component: str) -> None:
    objs = docs("--set", f"{component}.podLabels.team=queue",
                "--set", f"{component}.podLabels.app\\.kubernetes\\.io/component=hijack",
                "--set", f"{component}.podAnnotations.example\\.org/owner=ops",
                "--set-string", f"{component}.podAnnotations.prometheus\\.io/scrape=false")
    meta = pod(objs, component)["metadata"]
    assert meta["labels"]["team"] == "queue"
    assert meta["labels"]["app.kubernetes.io/component"] == component
    assert meta["annotations"]["example.org/owner"] == "ops"
    assert meta["annotations"]["prometheus.io/scrape"] == "false"
    assert "checksum/config" in meta["annotations"]
    other = pod(objs, "worker" if component == "api" else "api")["metadata"]
    assert "team" not in other["labels"] and "example.org/owner" not in other["annotations"]


@pytest.mark.parametrize("component", DEPLOYMENTS)
def test_priority_class_is_set_per_component(component: str) -> None:
    objs = docs("--set", f"{component}.priorityClassName=taskq-high")
    assert pod(objs, component)["spec"]["priorityClassName"] == "taskq-high"
    assert "priorityClassName" not in pod(docs(), component)["spec"]


@pytest.mark.parametrize("component", DEPLOYMENTS)
def test_topology_spread_constraints_select_the_component_pods_by_default(component: str) -> None:
    objs = docs("--set", f"{component}.topologySpreadConstraints[0].maxSkew=1",
                "--set", f"{component}.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                "--set", f"{component}.topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
                "--set", f"{component}.topologySpreadConstraints[1].maxSkew=2",
                "--set", f"{component}.topologySpreadConstraints[1].topologyKey=kubernetes.io/hostname",
                "--set", f"{component}.topologySpreadConstraints[1].whenUnsatisfiable=DoNotSchedule",
                "--set", f"{component}.topologySpreadConstraints[1].labelSelector.matchLabels.mine=yes")
    spec = pod(objs, component)["spec"]
    first, second = spec["topologySpreadConstraints"]
    assert first["topologyKey"] == "topology.kubernetes.io/zone"
    assert first["labelSelector"]["matchLabels"] == pod(objs, component)["metadata"]["labels"]
    assert second["labelSelector"] == {"matchLabels": {"mine": "yes"}}
    assert "topologySpreadConstraints" not in pod(docs(), component)["spec"]


@pytest.mark.parametrize("component", DEPLOYMENTS)
def test_extra_env_env_from_volumes_and_mounts_are_appended(component: str) -> None:
    objs = docs("--set", f"{component}.extraEnv[0].name=HTTPS_PROXY",
                "--set", f"{component}.extraEnv[0].value=http://proxy:3128",
                "--set", f"{component}.extraEnvFrom[0].secretRef.name=app-env",
                "--set", f"{component}.extraVolumes[0].name=certs",
                "--set", f"{component}.extraVolumes[0].configMap.name=corp-ca",
                "--set", f"{component}.extraVolumeMounts[0].name=certs",
                "--set", f"{component}.extraVolumeMounts[0].mountPath=/etc/ssl/corp")
    c = container(objs, component)
    assert {"name": "HTTPS_PROXY", "value": "http://proxy:3128"} in c["env"]
    assert any(e["name"] == "TASKQ_KAFKA_BOOTSTRAP" for e in c["env"])
    assert c["envFrom"][0]["configMapRef"]["name"] == "rel-taskq"
    assert {"secretRef": {"name": "app-env"}} in c["envFrom"]
    assert {"name": "certs", "mountPath": "/etc/ssl/corp"} in c["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert {"name": "certs", "configMap": {"name": "corp-ca"}} in pod(objs, component)["spec"]["volumes"]


def test_images_default_to_repository_and_app_version() -> None:
    objs = docs()
    assert container(objs, "api")["image"] == "taskq-api:0.1.0"
    assert container(objs, "worker")["image"] == "taskq-worker:0.1.0"


def test_image_registry_precedence_is_component_then_chart_then_global() -> None:
    objs = docs("--set", "global.imageRegistry=global.example", "--set", "image.tag=1.2")
    assert container(objs, "api")["image"] == "global.example/taskq-api:1.2"
    objs = docs("--set", "global.imageRegistry=global.example", "--set", "image.registry=chart.example/",
                "--set", "worker.image.registry=worker.example")
    assert container(objs, "api")["image"] == "chart.example/taskq-api:0.1.0"
    assert container(objs, "worker")["image"] == "worker.example/taskq-worker:0.1.0"
    test_pod = find(objs, "Pod", "rel-taskq-test-submit")
    assert test_pod["spec"]["containers"][0]["image"] == container(objs, "api")["image"]


def test_image_digest_wins_over_the_tag_per_component() -> None:
    objs = docs("--set", "image.tag=1.2", "--set", f"worker.image.digest={DIGEST}")
    assert container(objs, "worker")["image"] == f"taskq-worker@{DIGEST}"
    assert container(objs, "api")["image"] == "taskq-api:1.2"
    res = render("--set", "api.image.digest=latest", check=False)
    assert res.returncode != 0 and "/api/image/digest" in res.stderr


@pytest.mark.parametrize("value", [
    "api.podLabels.team=1",
    "worker.extraEnv[0].value=x",
    "api.image.tag=1",
    "worker.topologySpreadConstraints[0].maxSkew=1",
])
def test_the_schema_rejects_malformed_pod_settings(value: str) -> None:
    assert render("--set", value, check=False).returncode != 0
