"""The e2e's diagnosis of stuck tasks: every part it can gather, and a part that fails says so
instead of hiding the failure it was called to explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import scenarios


def _api(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.startswith("/api/tasks/"):
        return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1], "status": "queued"})
    if path == "/api/workers":
        return httpx.Response(200, json=[{"id": "w1", "status": "alive", "partitions": [0, 1], "current_tasks": 0,
                                          "quiet": False, "lost_partitions": []}])
    return httpx.Response(500, text="boom")  # /api/stats: this part fails


class _Http:
    def __init__(self) -> None:
        self.client = httpx.Client(transport=httpx.MockTransport(_api), base_url="http://api")

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, url.replace("http://api", ""), **kw)

    def map(self, fn: Any, items: Any) -> list[Any]:
        return [fn(self.client, i) for i in items]


class _Env:
    namespace, release = "jobs", "rel"
    token: str | None = None

    def __init__(self) -> None:
        self.http = _Http()

    def api_url(self) -> str:
        return "http://api"

    def kubectl(self, *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None) -> str:
        if args[:2] == ("get", "pods"):
            return json.dumps({"items": [{"metadata": {"name": "rel-worker-abc"}, "status": {}}]})
        assert args[0] == "logs" and args[1] == "rel-worker-abc" and "--tail=80" in args
        return "worker w1 partitions assigned [0, 1]"


def test_the_diagnosis_gathers_states_workers_and_logs_and_names_what_it_could_not_get(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenarios, "DIAGNOSIS", tmp_path / "diagnosis.txt")
    text = scenarios.diagnose(_Env(), ["t1", "t2"])  # type: ignore[arg-type]
    assert '--- stuck tasks by status\n{"queued": 2}' in text
    assert "w1 alive partitions=[0, 1] running=0 quiet=False lost_partitions=[]" in text
    assert "--- kubectl logs rel-worker-abc (last 80 lines)\nworker w1 partitions assigned [0, 1]" in text
    assert "--- consumer lag per partition (API /api/stats): unavailable" in text
    assert (tmp_path / "diagnosis.txt").read_text().strip() == text.strip()
