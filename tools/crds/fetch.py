#!/usr/bin/env python3
"""JSON schemas of the custom resources the chart renders, for kubeconform, from the operators' CRDs.

    fetch.py --out DIR --keda VERSION --prometheus-operator VERSION --strimzi VERSION [--fallback DIR]

writes DIR/{group}/{kind}_{version}.json (kind in lower case: kubeconform's
``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json`` layout) and DIR/SOURCES.txt. The versions
are pinned in tools/crds/crds.mk, which runs this into a temporary folder and moves that in whole.

Where each CRD comes from, through the package registries only:
- KEDA and prometheus-operator: their Go modules, by ``go mod download`` (GOPROXY as configured),
  which carry the CRD YAML in their source.
- Strimzi: Maven Central has no CRD YAML, only the API classes and the CRD generator
  (io.strimzi:api, io.strimzi:crd-generator; tools/crds/pom.xml). Strimzi's own build makes its CRDs by
  running that generator on those classes, and so does this. Both are Java 21 class files: a Java 21+
  is looked for ($JAVA, $JAVA_HOME, java on PATH, /usr/lib/jvm/*).
- OT-Container-Kit redis-operator: no registry serves it (the Go module proxy refuses
  github.com/OT-CONTAINER-KIT/redis-operator), so its schemas are copied from --fallback when that
  folder has them, as is Strimzi's where no Java 21+ is found.

Each CRD version's openAPIV3Schema becomes a JSON schema as kubeconform's openapi2jsonschema.py makes
it for strict validation (DENY_ROOT_ADDITIONAL_PROPERTIES): ``additionalProperties: false`` on every
object schema that lists properties and sets no additionalProperties, the root included (apiVersion,
kind and metadata are always among the root's properties), and an int-or-string becomes
``oneOf: [string, integer]``. Unlike that script it walks the schema structurally, so it leaves open
the objects that keep unknown fields (x-kubernetes-preserve-unknown-fields) and the branches of
allOf/anyOf/oneOf/not, which in a structural schema only constrain fields declared beside them.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
JAVA_MIN = 21


class FetchError(Exception):
    """Printed as the one ``error: ...`` line."""


@dataclass(frozen=True)
class GoSource:
    name: str
    module: str
    files: tuple[str, ...]


KEDA = GoSource("KEDA", "github.com/kedacore/keda/v2", (
    "config/crd/bases/keda.sh_scaledobjects.yaml",
    "config/crd/bases/keda.sh_triggerauthentications.yaml",
))
PROMETHEUS_OPERATOR = GoSource("prometheus-operator", "github.com/prometheus-operator/prometheus-operator", (
    "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
    "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
))
STRIMZI_GROUP = "kafka.strimzi.io"
STRIMZI_CLASSES = (
    "io.strimzi.api.kafka.model.kafka.Kafka",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "io.strimzi.api.kafka.model.user.KafkaUser",
)
REDIS_GROUP = "redis.redis.opstreelabs.in"
# What the chart's custom resources need; a version bump that loses one of these fails here.
EXPECTED = {
    "keda.sh": ("scaledobject_v1alpha1", "triggerauthentication_v1alpha1"),
    "monitoring.coreos.com": ("servicemonitor_v1", "podmonitor_v1", "prometheusrule_v1"),
    STRIMZI_GROUP: ("kafka_v1", "kafkanodepool_v1", "kafkatopic_v1", "kafkauser_v1"),
    REDIS_GROUP: ("redis_v1beta2", "redisreplication_v1beta2", "redissentinel_v1beta2"),
}
INT_OR_STRING_KEPT = ("description", "pattern")


# --- conversion --------------------------------------------------------------------------------

def strict_schema(node: Any, *, open_objects: bool = False) -> Any:
    """A JSON schema node converted as described in the module docstring."""
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string") is True or node.get("format") == "int-or-string":
        kept = {k: v for k, v in node.items() if k in INT_OR_STRING_KEPT}
        return {**kept, "oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = dict(node)
    for key in ("properties", "patternProperties"):
        if isinstance(node.get(key), dict):
            out[key] = {name: strict_schema(sub, open_objects=open_objects) for name, sub in node[key].items()}
    if isinstance(node.get("items"), list):
        out["items"] = [strict_schema(sub, open_objects=open_objects) for sub in node["items"]]
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out[key] = strict_schema(node[key], open_objects=open_objects)
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            out[key] = [strict_schema(sub, open_objects=True) for sub in node[key]]
    if isinstance(node.get("not"), dict):
        out["not"] = strict_schema(node["not"], open_objects=True)
    if ("properties" in out and "additionalProperties" not in out and not open_objects
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def root_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    props = dict(openapi.get("properties") or {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props.setdefault("metadata", {"type": "object"})
    return dict(strict_schema({**openapi, "properties": props}))


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads a bare ``=`` as a string, as openapi2jsonschema.py does (PyYAML #89)."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: str(node.value))


def crd_schemas(path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(group, "{kind}_{version}", schema) for each version of each CRD in a YAML file."""
    with path.open() as f:
        docs = [d for d in yaml.load_all(f, Loader=_Loader) if d]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    crds += [i for d in docs for i in d.get("items") or [] if i.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise FetchError(f"{path.name} holds no CustomResourceDefinition")
    for crd in crds:
        spec = crd["spec"]
        for version in spec.get("versions") or []:
            openapi = (version.get("schema") or {}).get("openAPIV3Schema") or (spec.get("validation") or {}).get(
                "openAPIV3Schema")
            if openapi:
                yield spec["group"], f"{spec['names']['kind'].lower()}_{version['name']}", root_schema(openapi)


def write_schemas(out: Path, crd_files: list[Path]) -> list[str]:
    written = []
    for crd_file in crd_files:
        for group, name, schema in crd_schemas(crd_file):
            (out / group).mkdir(parents=True, exist_ok=True)
            (out / group / f"{name}.json").write_text(json.dumps(schema, indent=2) + "\n")
            written.append(f"{group}/{name}")
    return written


# --- sources -----------------------------------------------------------------------------------

def one_line(text: str) -> str:
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def need(command: str, why: str) -> str:
    path = shutil.which(command)
    if not path:
        raise FetchError(f"'{command}' not found: {why}")
    return path


def go_module_files(src: GoSource, version: str, work: Path) -> list[Path]:
    go = need("go", f"fetching the {src.name} CRDs needs Go (apt-get install golang, or a Go 1.22+ on PATH)")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GO111MODULE": "on"}
    res = subprocess.run([go, "mod", "download", "-json", f"{src.module}@{version}"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    try:
        info = json.loads(res.stdout)
    except json.JSONDecodeError:
        info = {"Error": res.stderr or res.stdout or f"exit status {res.returncode}"}
    if info.get("Error") or not info.get("Dir"):
        raise FetchError(f"Go could not download {src.module}@{version} ({src.name}'s CRDs): "
                         f"{one_line(str(info.get('Error') or res.stderr))}")
    files = [Path(info["Dir"]) / f for f in src.files]
    if missing := [f for f in src.files if not (Path(info["Dir"]) / f).is_file()]:
        raise FetchError(f"{src.module}@{version} has no {', '.join(missing)}: "
                         "pick another version in tools/crds/crds.mk")
    return files


def java_major(java: str) -> int:
    try:
        res = subprocess.run([java, "-XshowSettings:properties", "-version"], capture_output=True, text=True,
                             timeout=60)
    except OSError:
        return 0
    m = re.search(r"java\.specification\.version = (\d+)", res.stderr)
    return int(m.group(1)) if m else 0


def find_java() -> tuple[str | None, list[str]]:
    """A Java JAVA_MIN+ and, when there is none, what was looked at (path and version)."""
    candidates = [os.environ.get("JAVA", "")]
    if home := os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(home) / "bin" / "java"))
    candidates.append(shutil.which("java") or "")
    candidates += sorted(glob.glob("/usr/lib/jvm/*/bin/java"), reverse=True)
    seen = []
    for java in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
        major = java_major(java)
        if major >= JAVA_MIN:
            return java, []
        seen.append(f"{java} is {major or 'unknown'}")
    return None, seen


def strimzi_crd_files(version: str, java: str, work: Path) -> list[Path]:
    mvn = need("mvn", "fetching Strimzi's CRD generator needs Maven (apt-get install maven)")
    jars = work / "strimzi-jars"
    res = subprocess.run([mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), f"-Dstrimzi.version={version}",
                          "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={jars}"],
                         capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        output = one_line(res.stdout + "\n" + res.stderr)
        m = (re.search(r"could not be resolved: (.*?)(?:: |$)", output)
             or re.search(r"(Could not (?:find|transfer|resolve) .*?)(?: -> \[Help|$)", output))
        raise FetchError(f"Maven could not fetch io.strimzi:api:{version} and io.strimzi:crd-generator:{version} "
                         f"({(m.group(1) if m else output)[:300]}); a proxy goes in ~/.m2/settings.xml")
    crds = work / "strimzi-crds"
    crds.mkdir()
    files = [crds / f"{cls.rsplit('.', 1)[1].lower()}.yaml" for cls in STRIMZI_CLASSES]
    res = subprocess.run([java, "-cp", f"{jars}/*", "io.strimzi.crdgenerator.CrdGenerator",
                          "--target-kube", "1.16+", "--crd-api-version", "v1", "--api-versions", "v1",
                          "--storage-version", "v1", "--yaml",
                          *(f"{cls}={f}" for cls, f in zip(STRIMZI_CLASSES, files, strict=True))],
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0 or not all(f.is_file() for f in files):
        raise FetchError(f"Strimzi {version}'s CRD generator failed: {one_line(res.stderr or res.stdout)[:400]}")
    return files


def copy_fallback(fallback: Path | None, group: str, out: Path) -> list[str]:
    """The group's schemas from the fallback folder, already in kubeconform's layout."""
    src = fallback / group if fallback else None
    if not src or not src.is_dir():
        return []
    (out / group).mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.json")):  # converted like the rest, so they are as strict at the root
        (out / group / f.name).write_text(json.dumps(root_schema(json.loads(f.read_text())), indent=2) + "\n")
    return [f"{group}/{p.stem}" for p in sorted((out / group).glob("*.json"))]


# --- main --------------------------------------------------------------------------------------

def fetch(out: Path, keda: str, prometheus_operator: str, strimzi: str, fallback: Path | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="crds-", dir=out.parent) as tmp:
        work = Path(tmp)
        for src, version in ((KEDA, keda), (PROMETHEUS_OPERATOR, prometheus_operator)):
            for name in write_schemas(out, go_module_files(src, version, work)):
                sources[name] = f"Go module {src.module}@{version}"
        java, looked_at = find_java()
        if java:
            for name in write_schemas(out, strimzi_crd_files(strimzi, java, work)):
                sources[name] = f"Maven io.strimzi:api:{strimzi}, generated by io.strimzi:crd-generator:{strimzi}"
        elif copied := copy_fallback(fallback, STRIMZI_GROUP, out):
            print(f"note: no Java {JAVA_MIN}+ for Strimzi's CRD generator ({'; '.join(looked_at)}): "
                  f"copied the Strimzi schemas from {fallback}")
            sources.update(dict.fromkeys(copied, f"copied from {fallback}"))
        else:
            raise FetchError(f"Strimzi {strimzi}'s CRD generator needs Java {JAVA_MIN}+ and none was found "
                             f"({'; '.join(looked_at) or 'no java at all'}): set JAVA=/path/to/bin/java")
    if copied := copy_fallback(fallback, REDIS_GROUP, out):
        sources.update(dict.fromkeys(copied, f"copied from {fallback} (no registry serves the redis-operator)"))
    missing = [f"{g}/{n}" for g, names in EXPECTED.items() for n in names if f"{g}/{n}" not in sources]
    if missing == [f"{REDIS_GROUP}/{n}" for n in EXPECTED[REDIS_GROUP]]:
        print(f"warning: no registry serves the OT-Container-Kit redis-operator CRDs and {fallback or '--fallback'}"
              f"/{REDIS_GROUP} does not exist: the chart test fails on a Redis resource until it does", file=sys.stderr)
    elif missing:
        raise FetchError(f"these schemas were not made: {', '.join(missing)}: check the versions in tools/crds/crds.mk")
    (out / "SOURCES.txt").write_text("".join(f"{name}.json\t{how}\n" for name, how in sorted(sources.items())))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--out", type=Path, required=True, help="the folder to write (created; normally a fresh one)")
    p.add_argument("--keda", required=True, help="github.com/kedacore/keda/v2 version, e.g. v2.20.2")
    p.add_argument("--prometheus-operator", required=True, help="prometheus-operator Go module version")
    p.add_argument("--strimzi", required=True, help="io.strimzi:api and crd-generator version, e.g. 1.2.0")
    p.add_argument("--fallback", type=Path, help="kubeconform-layout schemas for what no registry serves")
    args = p.parse_args(argv)
    try:
        fetch(args.out, args.keda, args.prometheus_operator, args.strimzi, args.fallback)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, subprocess.SubprocessError, yaml.YAMLError, KeyError) as e:
        print(f"error: making the CRD schemas failed: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
