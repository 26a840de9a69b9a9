"""NOTES.txt: every command it prints runs as pasted, against objects this very render creates."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import pytest

from tests.chart.helm import CHART, ROOT, docs, find, notes

CI = CHART / "ci"
E2E = ROOT / "tests" / "e2e"
KINDS = {"svc": "Service", "secret": "Secret", "deployment": "Deployment", "scaledobject": "ScaledObject",
         "hpa": "HorizontalPodAutoscaler", "kafka": "Kafka"}


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    release: str = "rel"
    namespace: str = "jobs"
    # The Deployment `kubectl scale` and the autoscalers target.
    worker: str = "rel-worker"


CASES = {
    "default": Case(()),
    "ingress-tls": Case(("-f", str(CI / "ingress-tls-values.yaml"))),
    "keda-everything": Case(("-f", str(CI / "everything-values.yaml"))),
    "hpa": Case(("-f", str(CI / "hpa-values.yaml"))),
    "external": Case(("-f", str(CI / "external-values.yaml"))),
    "fullname-override": Case(("--set", "fullnameOverride=queue"), worker="queue-worker"),
    "e2e-keda": Case(("-f", str(E2E / "values-cluster.yaml"), "-f", str(E2E / "values-autoscaling-keda.yaml")),
                     release="taskq", namespace="taskq-e2e", worker="taskq-worker"),
}


def commands(text: str) -> list[list[str]]:
    """The indented lines that start with kubectl or helm, split as a shell splits them (pipes cut off)."""
    out = []
    for line in text.splitlines():
        if line.startswith("  ") and line.split()[0] in ("kubectl", "helm"):
            out.append(shlex.split(line.split(" | ")[0]))
    return out


def kubectl_target(cmd: list[str]) -> tuple[str, str, str | None]:
    """(kind, name, namespace) of a `kubectl <verb> ...` command as NOTES.txt writes them."""
    positional: list[str] = []
    namespace = None
    args = iter(cmd[2:])
    for a in args:
        if a == "-n":
            namespace = next(args)
        elif a == "-o":
            next(args)
        elif not a.startswith("-"):
            positional.append(a)
    if "/" in positional[0]:
        kind, name = positional[0].split("/", 1)
    else:
        kind, name = positional[0], positional[1]
    return KINDS[kind], name, namespace


def rendered(case: Case) -> tuple[str, list[dict[str, Any]]]:
    return (notes(*case.args, release=case.release, namespace=case.namespace),
            docs(*case.args, release=case.release, namespace=case.namespace))


def api_token_secret(objs: list[dict[str, Any]], api: str) -> str:
    container = find(objs, "Deployment", api)["spec"]["template"]["spec"]["containers"][0]
    env = next(e for e in container["env"] if e["name"] == "TASKQ_API_TOKEN")
    return str(env["valueFrom"]["secretKeyRef"]["name"])


@pytest.mark.parametrize("name", CASES)
def test_every_command_in_the_notes_names_an_object_of_the_release_in_its_namespace(name: str) -> None:
    case = CASES[name]
    text, objs = rendered(case)
    for leftover in ("{{", "<no value>", "%!", "<release>", "<fullnameOverride>"):
        assert leftover not in text, f"{leftover!r} in NOTES:\n{text}"
    assert text.startswith(f'taskq 0.1.0 is installed as release "{case.release}" in namespace "{case.namespace}".')
    api = next(o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"
               and o["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "api")
    cmds = commands(text)
    assert ["helm", "test", case.release, "-n", case.namespace] in cmds, text
    for cmd in cmds:
        if cmd[0] == "helm":
            assert cmd[-2:] == ["-n", case.namespace] or cmd[1] == "repo", cmd
            continue
        kind, obj, namespace = kubectl_target(cmd)
        assert namespace == case.namespace, cmd
        if kind == "Secret":
            assert obj == api_token_secret(objs, api), cmd
        elif kind == "HorizontalPodAutoscaler" and obj.startswith("keda-hpa-"):
            # KEDA names the HPA it makes after the ScaledObject.
            find(objs, "ScaledObject", obj.removeprefix("keda-hpa-"))
        else:
            target = find(objs, kind, obj)
            if kind == "Service":
                local, remote = cmd[-1].split(":")
                assert int(remote) in {p["port"] for p in target["spec"]["ports"]}, (cmd, target["spec"]["ports"])
                assert f"open http://127.0.0.1:{local}/" in text, text
            if kind in ("ScaledObject", "HorizontalPodAutoscaler"):
                assert target["spec"]["scaleTargetRef"]["name"] == case.worker, target
            if kind == "Deployment":
                assert obj == case.worker, cmd
                labels = target["spec"]["template"]["metadata"]["labels"]
                assert labels["app.kubernetes.io/component"] == "worker", labels


@pytest.mark.parametrize("name", CASES)
def test_the_notes_scale_workers_the_way_this_release_scales_them(name: str) -> None:
    case = CASES[name]
    text, objs = rendered(case)
    verbs = {(c[1], c[2]) for c in commands(text) if c[0] == "kubectl"}
    scaled_by = {o["kind"] for o in objs if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")}
    if "ScaledObject" in scaled_by:
        # KEDA owns spec.replicas: a manual `kubectl scale` is undone at its next poll.
        assert ("get", "scaledobject") in verbs and ("get", "hpa") in verbs, text
        assert not any(v == "scale" for v, _ in verbs), text
    elif scaled_by:
        assert ("get", "hpa") in verbs and not any(v == "scale" for v, _ in verbs), text
    else:
        scale = next(c for c in commands(text) if c[:3] == ["kubectl", "scale", "deployment"])
        partitions = int(find(objs, "ConfigMap")["data"].get("TASKQ_PARTITIONS", 12))
        replicas = int(next(a for a in scale if a.startswith("--replicas=")).split("=")[1])
        assert 1 < replicas <= partitions, scale


def test_the_ingress_url_is_the_ingress_host_with_https_when_it_has_tls() -> None:
    for name, scheme in (("ingress-tls", "https"), ("keda-everything", "https")):
        text, objs = rendered(CASES[name])
        ingress = find(objs, "Ingress")["spec"]
        assert bool(ingress.get("tls")) == (scheme == "https")
        assert f"  {scheme}://{ingress['rules'][0]['host']}/\n" in text, text
        assert "port-forward" not in text
    text, _ = rendered(Case(("--set", "api.ingress.enabled=true", "--set", "api.ingress.host=q.example.org")))
    assert "  http://q.example.org/\n" in text, text


def test_the_operator_commands_appear_only_for_the_operators_in_use() -> None:
    text, objs = rendered(CASES["default"])
    assert "strimzi-kafka-operator" in text and "ot-helm/redis-operator" in text
    wait = next(c for c in commands(text) if c[:2] == ["kubectl", "wait"])
    assert wait[2] == f"kafka/{find(objs, 'Kafka')['metadata']['name']}", wait
    for name in ("external", "e2e-keda"):
        text, _ = rendered(CASES[name])
        assert "operator" not in text and "kubectl wait" not in text, text


def test_behind_an_ingress_the_notes_ask_for_the_trusted_proxies_until_they_are_set() -> None:
    base = ("--set", "api.ingress.enabled=true", "--set", "api.ingress.host=q.example.com")
    assert "set api.trustedProxies" in notes(*base)
    assert "trustedProxies" not in notes(*base, "--set", "api.trustedProxies=10.42.0.0/16")
    assert "trustedProxies" not in notes()  # no Ingress: the API sees its callers' own addresses
