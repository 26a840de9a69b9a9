"""Auth against a real uvicorn server, Kafka and Redis: bearer tokens, the UI's session cookie,
the read-only token on every route, and no token in a URL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from taskq.api.auth import COOKIE, session_value
from tests.helpers import ApiServer, Services, make_settings

WRITE, READ = "w-s3cret-token", "r-s3cret-token"
OPEN_ROUTES = {"/api/login", "/api/logout", "/api/session"}


@pytest.fixture
def api(services: Services) -> Iterator[ApiServer]:
    a = ApiServer(make_settings(services, api_token=WRITE, api_read_token=READ))
    yield a
    a.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(api: ApiServer, *, safe: bool) -> list[tuple[str, str]]:
    """(method, path with placeholders filled) of every protected /api route, from the app's own
    OpenAPI document: a route added later is covered without changing this test."""
    out = []
    for path, ops in api.http.get("/api/openapi.json", headers=bearer(WRITE)).json()["paths"].items():
        if not path.startswith("/api") or path in OPEN_ROUTES:
            continue
        for method in ops:
            if (method in ("get", "head")) == safe:
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "0" * 32, path)))
    return sorted(out)


def test_the_read_only_token_reads_everything_and_every_action_is_403(api: ApiServer) -> None:
    reads = api_routes(api, safe=True)
    assert ("GET", "/api/tasks") in reads and ("GET", "/api/stats") in reads
    for method, path in reads:
        if path == "/api/events":
            continue  # a stream: checked below
        r = api.http.request(method, path, headers=bearer(READ))
        assert r.status_code in (200, 404), (method, path, r.status_code, r.text)  # 404: the placeholder id
    with api.http.stream("GET", "/api/events", headers=bearer(READ)) as r:
        assert r.status_code == 200
        assert next(r.iter_lines()).startswith("event: ready")

    actions = api_routes(api, safe=False)
    assert ("POST", "/api/tasks") in actions and ("POST", f"/api/tasks/{'0' * 32}/cancel") in actions
    for method, path in actions:
        r = api.http.request(method, path, headers=bearer(READ), json={})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "read-only" in r.json()["detail"] and path in r.json()["detail"]
    # The full token may act.
    r = api.http.post("/api/tasks", json={"task": "add", "args": [1, 2]}, headers=bearer(WRITE))
    assert r.status_code == 202, r.text


def test_no_token_or_a_wrong_one_is_401_and_a_token_in_the_url_is_refused(api: ApiServer) -> None:
    assert api.http.get("/api/tasks").status_code == 401
    assert api.http.get("/api/tasks", headers=bearer("nope")).status_code == 401
    assert api.http.post("/api/tasks", json={"task": "add"}).status_code == 401
    for path in ("/api/events", "/api/tasks", "/api/stats"):
        r = api.http.get(path, params={"token": WRITE})
        assert r.status_code == 401, path
        assert "not accepted in the URL" in r.json()["detail"]
    assert api.http.get("/healthz").status_code == 200 and api.http.get("/readyz").status_code == 200
    assert api.http.get("/api/session").json() == {
        "auth_required": True, "role": None, "can_write": False, "expires_at": None, "via": None}


def test_login_sets_an_httponly_strict_cookie_that_signs_the_ui_in_and_logout_ends_it(api: ApiServer) -> None:
    http = httpx.Client(base_url=api.url, timeout=30)
    try:
        assert http.post("/api/login", json={"token": "wrong"}).status_code == 401
        assert COOKIE not in http.cookies
        r = http.post("/api/login", json={"token": WRITE})
        assert r.status_code == 200 and r.json()["role"] == "write" and r.json()["can_write"] is True
        header = r.headers["set-cookie"]
        assert header.startswith(f"{COOKIE}=") and WRITE not in header
        for attr in ("HttpOnly", "SameSite=strict", "Path=/api", "Max-Age=43200"):
            assert attr.lower() in header.lower(), header
        assert "secure" not in header.lower()  # plain http here; over https the cookie is Secure

        assert http.get("/api/tasks").status_code == 200
        assert http.get("/api/session").json()["via"] == "cookie"
        assert http.post("/api/tasks", json={"task": "add", "args": [1, 2]}).status_code == 202
        with http.stream("GET", "/api/events") as s:  # what the UI's EventSource does
            assert s.status_code == 200
        # A browser marks a request another site made; the cookie does not act for it.
        r = http.post("/api/tasks", json={"task": "add", "args": [1, 2]}, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403

        r = http.post("/api/logout")
        assert r.status_code == 204 and "max-age=0" in r.headers["set-cookie"].lower()
        assert http.get("/api/tasks").status_code == 401
        assert http.get("/api/session").json()["role"] is None
    finally:
        http.close()


def test_a_read_only_session_reads_and_is_refused_actions(api: ApiServer) -> None:
    http = httpx.Client(base_url=api.url, timeout=30)
    try:
        r = http.post("/api/login", json={"token": READ})
        assert r.json() | {"expires_at": None} == {
            "auth_required": True, "role": "read", "can_write": False, "expires_at": None, "via": "cookie"}
        assert http.get("/api/tasks").status_code == 200
        r = http.post("/api/tasks", json={"task": "add", "args": [1, 2]})
        assert r.status_code == 403 and "read-only" in r.json()["detail"]
    finally:
        http.close()


def test_a_forged_expired_or_foreign_cookie_is_refused(api: ApiServer, services: Services) -> None:
    settings = api.server.config.app.state.settings  # type: ignore[union-attr]
    good, _ = session_value(settings, "read")
    _, expires, sid, mac = good.split(".")
    forged = [
        f"write.{expires}.{sid}.{mac}",  # the read session's mac under another role
        f"read.{int(expires) + 3600}.{sid}.{mac}",  # a later expiry
        f"read.{expires}.{'0' * len(sid)}.{mac}",  # another session id
        f"read.{expires}.{mac}",  # the old three-part form
        session_value(settings, "write", now=0)[0],  # expired long ago
        session_value(make_settings(services, api_token="another-token"), "write")[0],  # another token's
        "garbage", "", "read..", "write.9999999999999999999.x",
    ]
    for value in forged:
        r = api.http.get("/api/tasks", headers={"Cookie": f"{COOKIE}={value}"})
        assert r.status_code == 401, value
    assert api.http.get("/api/tasks", headers={"Cookie": f"{COOKIE}={good}"}).status_code == 200


def test_without_a_token_everything_is_open_and_login_is_a_no_op(services: Services) -> None:
    a = ApiServer(make_settings(services))
    try:
        assert a.http.get("/api/session").json()["role"] == "write"
        r = a.http.post("/api/login", json={"token": "anything"})
        assert r.status_code == 200 and r.json()["auth_required"] is False and "set-cookie" not in r.headers
        assert a.http.get("/api/tasks").status_code == 200
    finally:
        a.close()


def test_the_ui_files_are_revalidated_and_kept_to_their_own_origin(api: ApiServer) -> None:
    for path in ("/ui/", "/ui/app.js", "/ui/style.css"):
        r = api.http.get(path)
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
    again = api.http.get("/ui/app.js", headers={"If-None-Match": api.http.get("/ui/app.js").headers["etag"]})
    assert again.status_code == 304  # a reload costs a revalidation, not the file


def test_behind_a_proxy_that_ends_tls_the_cookie_is_secure_when_told(services: Services) -> None:
    a = ApiServer(make_settings(services, api_token=WRITE, api_cookie_secure=True))
    try:
        r = a.http.post("/api/login", json={"token": WRITE})
        assert r.status_code == 200 and "; secure" in r.headers["set-cookie"].lower()
        assert "; secure" in a.http.post("/api/logout").headers["set-cookie"].lower()
    finally:
        a.close()


def test_the_openapi_document_and_its_page_need_a_token_the_read_only_one_will_do(api: ApiServer) -> None:
    for path in ("/api/openapi.json", "/api/docs"):
        assert api.http.get(path).status_code == 401
        assert api.http.get(path, headers=bearer("wrong")).status_code == 401
        assert api.http.get(path, headers=bearer(READ)).status_code == 200
    assert "/api/tasks" in api.http.get("/api/openapi.json", headers=bearer(READ)).json()["paths"]
    # A signed-in browser opens the page with its session cookie; the old addresses lead there.
    assert api.http.post("/api/login", json={"token": READ}).status_code == 200
    page = api.http.get("/docs", follow_redirects=True)
    assert page.status_code == 200 and "/api/openapi.json" in page.text
    assert api.http.get("/openapi.json", follow_redirects=True).json()["info"]["title"] == "taskq"
