"""The package's layers, as docs/architecture.md draws them: Kafka client libraries only under
``taskq/kafka/``, and the dev stack (``taskq dev``, the local Kafka/Redis/Prometheus) never on the
import path of a worker or the API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "taskq"
KAFKA_LIBRARIES = ("kafka", "confluent_kafka")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_only_the_kafka_package_imports_a_kafka_client_library() -> None:
    outside = {
        str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n.split(".")[0] in KAFKA_LIBRARIES)
        for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "kafka"
    }
    assert {k: v for k, v in outside.items() if v} == {}


def test_a_worker_and_the_api_never_import_the_dev_stack() -> None:
    code = ("import sys, taskq, taskq.cli, taskq.worker.runner, taskq.api.app; "
            "print(sorted(m for m in sys.modules if m.startswith('taskq.devstack')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
