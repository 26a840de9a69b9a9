"""Sessions that end when asked, sign-ins that cannot be guessed at speed, the Secure cookie behind
a TLS proxy, and the audit trail of who did what: against a real uvicorn server, Kafka and Redis."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskq.api.auth import COOKIE, token_name
from taskq.devstack import free_port, spawn, stop_process
from taskq.settings import Settings
from tests.helpers import ApiServer, Services, make_settings, settings_env, wait_for

WRITE, READ = "w-audit-token-1", "r-audit-token-1"


@pytest.fixture
def settings_(services: Services) -> Settings:
    return make_settings(services, api_token=WRITE, api_read_token=READ, api_login_attempts=3)


@pytest.fixture
def api(settings_: Settings) -> Iterator[ApiServer]:
    a = ApiServer(settings_)
    yield a
    a.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie_on_every_replica(
    api: ApiServer, settings_: Settings
) -> None:
    other = ApiServer(settings_, topics=False)
    try:
        assert api.http.post("/api/login", json={"token": WRITE}).status_code == 200
        copied = api.http.cookies[COOKIE]
        for server in (api, other):
            assert server.http.get("/api/tasks", headers={"Cookie": f"{COOKIE}={copied}"}).status_code == 200
        assert api.http.post("/api/logout").status_code == 204
        for server in (api, other):
            r = server.http.get("/api/tasks", headers={"Cookie": f"{COOKIE}={copied}"})
            assert r.status_code == 401, r.text
            who = server.http.get("/api/session", headers={"Cookie": f"{COOKIE}={copied}"}).json()
            assert who["role"] is None
        # A new sign-in is a new session, unaffected.
        assert api.http.post("/api/login", json={"token": WRITE}).status_code == 200
        assert api.http.get("/api/tasks").status_code == 200
    finally:
        other.close()


def test_failed_sign_ins_are_limited_per_address_across_replicas(api: ApiServer, settings_: Settings) -> None:
    other = ApiServer(settings_, topics=False)
    try:
        for _ in range(3):
            assert api.http.post("/api/login", json={"token": "guess"}).status_code == 401
        for server in (api, other):
            r = server.http.post("/api/login", json={"token": WRITE})  # even the right token, for now
            assert r.status_code == 429, r.text
            assert 1 <= int(r.headers["retry-after"]) <= 60 and "too many wrong tokens" in r.json()["detail"]
        # Locked out means every token from that address, the right one too: the answer tells nothing.
        assert api.http.get("/api/tasks", headers=bearer(WRITE)).status_code == 429
    finally:
        other.close()


def test_a_burst_of_concurrent_guesses_gets_no_more_tries_than_the_limit(api: ApiServer) -> None:
    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as c:
            answers = await asyncio.gather(*(c.post("/api/login", json={"token": f"guess-{i}"}) for i in range(30)))
        return [r.status_code for r in answers]

    codes = asyncio.run(burst())
    assert codes.count(401) == 3 and codes.count(429) == 27, codes


def test_wrong_bearer_tokens_count_too_and_lock_the_address_out(api: ApiServer) -> None:
    for _ in range(3):
        assert api.http.get("/api/tasks", headers=bearer("guess")).status_code == 401
    r = api.http.get("/api/tasks", headers=bearer("guess"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert api.http.get("/api/session", headers=bearer(WRITE)).status_code == 429


def test_guessing_does_not_push_real_actions_out_of_the_audit_trail(api: ApiServer) -> None:
    for i in range(8):
        assert api.http.post("/api/login", json={"token": f"guess-{i}"}).status_code in (401, 429)
    # Read from Redis directly: this address is locked out of the API for the rest of the minute.
    items = api.server.config.app.state.audit.entries()  # type: ignore[union-attr]
    # The first wrong token of the minute and the one that reached the limit: two entries, not eight.
    assert [e.detail for e in items] == [
        "wrong token (3 wrong from this address this minute; refused for the rest of it)",
        "wrong token (1 wrong from this address this minute)",
    ]


def test_an_event_stream_ends_when_its_session_is_signed_out(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskq.api import events

    monkeypatch.setattr(events, "SESSION_RECHECK", 0.2)
    assert api.http.post("/api/login", json={"token": READ}).status_code == 200
    cookie = api.http.cookies[COOKIE]
    subscribed, ended = threading.Event(), threading.Event()

    def read() -> None:
        with httpx.Client(base_url=api.url, timeout=httpx.Timeout(5, read=60)) as c, \
                c.stream("GET", "/api/events", headers={"Cookie": f"{COOKIE}={cookie}"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("event: ready"):
                    subscribed.set()
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert subscribed.wait(20), "the stream never said it was subscribed"
    assert not ended.is_set()
    assert api.http.post("/api/logout").status_code == 204
    assert ended.wait(20), "the stream outlived its signed-out session"


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted-proxy", "untrusted-proxy"])
def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_request_came_over_tls(
    settings_: Settings, tmp_path: Path, trusted: bool
) -> None:
    port = free_port()
    s = settings_.model_copy(update={"api_trusted_proxies": "127.0.0.1" if trusted else "10.9.9.9"})
    log = tmp_path / "api.log"
    with log.open("wb") as fh:
        proc = spawn([sys.executable, "-m", "taskq", "api", "--port", str(port)], env=settings_env(s), stdout=fh)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what=f"the API ({log.read_text(errors='replace')})")
        r = httpx.post(f"{url}/api/login", json={"token": READ}, headers={"X-Forwarded-Proto": "https"}, timeout=10)
        assert r.status_code == 200
        assert ("; secure" in r.headers["set-cookie"].lower()) is trusted, r.headers["set-cookie"]
    finally:
        stop_process(proc, timeout=20)


def test_every_action_is_audited_with_who_what_and_how_it_ended_and_never_a_token(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskq.audit")
    http = api.http
    # A service submitting with its token is not an operator's action: not in the trail.
    delayed = http.post("/api/tasks", json={"task": "add", "args": [1, 2], "delay": 600}, headers=bearer(WRITE))
    tid = delayed.json()["id"]
    assert http.post(f"/api/tasks/{tid}/cancel", headers=bearer(WRITE)).status_code == 200
    purge = {"status": "cancelled", "older_than": 0, "dry_run": True}
    assert http.post("/api/tasks/bulk/purge", json=purge, headers=bearer(WRITE)).status_code == 200
    assert http.post("/api/tasks/bulk/purge", json=purge, headers=bearer(READ)).status_code == 403
    assert http.post("/api/login", json={"token": "nope"}).status_code == 401
    assert http.post("/api/login", json={"token": WRITE}).status_code == 200
    by_hand = http.post("/api/tasks", json={"task": "add", "args": [40, 2]}).json()["id"]  # the console's cookie
    assert http.post("/api/schedules", json={"name": "audited", "task": "add", "every": 60}).status_code == 201
    assert http.post("/api/tasks/0123456789abcdef0123456789abcdef/retry", headers=bearer(WRITE)).status_code == 404

    page = http.get("/api/audit", headers=bearer(READ)).json()
    got = [(e["method"], e["path"], e["status"], e["role"], e["via"]) for e in page["items"]]
    assert got == [
        ("POST", "/api/tasks/0123456789abcdef0123456789abcdef/retry", 404, "write", "bearer"),
        ("POST", "/api/schedules", 201, "write", "cookie"),
        ("POST", "/api/tasks", 202, "write", "cookie"),
        ("POST", "/api/login", 200, "write", "login"),
        ("POST", "/api/login", 401, "-", "login"),
        ("POST", "/api/tasks/bulk/purge", 403, "read", "bearer"),
        ("POST", "/api/tasks/bulk/purge", 200, "write", "bearer"),
        ("POST", f"/api/tasks/{tid}/cancel", 200, "write", "bearer"),
    ]
    entries = {(e["path"], e["status"]): e for e in page["items"]}
    assert entries[("/api/tasks", 202)]["detail"] == f"task add: {by_hand}"
    assert entries[("/api/schedules", 201)]["detail"] == "schedule audited: task add, every 60 s"
    purged = entries[("/api/tasks/bulk/purge", 200)]["detail"]
    assert '"status":"cancelled"' in purged and "(dry run)" in purged and "matched" in purged
    assert all(e["ip"] == "127.0.0.1" and e["at"] > 0 for e in page["items"])
    settings = api.server.config.app.state.settings  # type: ignore[union-attr]
    write_id, read_id = token_name(settings, "write"), token_name(settings, "read")
    assert entries[("/api/tasks/bulk/purge", 403)]["token"] == read_id
    assert {e["token"] for e in page["items"] if e["role"] == "write"} == {write_id}
    # Never a token, never the args: not in Redis, not in the log lines.
    lines = [r.getMessage() for r in caplog.records if r.name == "taskq.audit"]
    assert len(lines) == len(page["items"])
    for text in [*lines, str(page)]:
        assert WRITE not in text and READ not in text and "[40, 2]" not in text and "40, 2" not in text
    # Older entries page by page.
    first = http.get("/api/audit", params={"limit": 3}, headers=bearer(READ)).json()
    rest = http.get("/api/audit", params={"limit": 10, "before": first["next_before"]}, headers=bearer(READ)).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == [e["id"] for e in page["items"]]
    assert rest["next_before"] is None


def test_the_audit_trail_needs_a_token(api: ApiServer) -> None:
    assert httpx.get(f"{api.url}/api/audit", timeout=10).status_code == 401


@pytest.mark.parametrize(("before", "status"), [
    ("99999999999999999999-0", 422),  # past 64 bits: Redis refuses it (found by the API fuzz: a 500)
    ("18446744073709551616-1", 422),
    ("0-0", 200),  # nothing is older: an empty page, not Redis' "invalid end ID"
    ("18446744073709551615-18446744073709551615", 200),
])
def test_any_before_id_is_a_page_or_a_clear_422(api: ApiServer, before: str, status: int) -> None:
    r = api.http.get("/api/audit", params={"before": before}, headers=bearer(READ))
    assert r.status_code == status, r.text
    if status == 422:
        assert "before=" in r.json()["detail"]
    else:
        assert r.json()["next_before"] is None


@pytest.mark.parametrize("since", ["99999999999999999999-0", "1-18446744073709551616"])
def test_an_event_id_past_64_bits_is_a_clear_422(api: ApiServer, since: str) -> None:
    r = api.http.get("/api/events", params={"since": since}, headers=bearer(READ))
    assert r.status_code == 422 and "is invalid" in r.json()["detail"]
