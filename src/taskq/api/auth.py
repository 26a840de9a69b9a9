"""Who is calling and what they may do: the bearer token, the UI's session cookie, the read-only token.

A caller is ``write`` (``TASKQ_API_TOKEN``, or any caller when no token is set) or ``read``
(``TASKQ_API_READ_TOKEN``: every read, no action). The web UI never holds a token after signing
in: ``POST /api/login`` trades it for an HttpOnly, SameSite=Strict cookie, so nothing the page runs
can read it and it never travels in a URL (the event stream used to take ``?token=``).

The cookie is ``<role>.<expires>.<mac>``, an HMAC keyed by the token of that role: any API replica
checks it without shared state, and changing a token ends every session signed with it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from ..settings import Settings

Role = Literal["write", "read"]
COOKIE = "taskq_session"
# The cookie goes only to the API: the UI's static files need none.
COOKIE_PATH = "/api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A browser says where a request comes from; a cookie-authenticated action from another site is
# refused even if a browser ignored SameSite.
FOREIGN_SITES = frozenset({"cross-site", "same-site"})
READ_ONLY = ("this token is read-only (TASKQ_API_READ_TOKEN): it can see everything and change nothing; "
             "sign in with the API token (TASKQ_API_TOKEN) to {action}")
UNAUTHORIZED = "missing or wrong API token: send 'Authorization: Bearer <token>', or sign in with POST /api/login"
IN_URL = ("the API token is not accepted in the URL (it would land in proxy and server logs): send "
          "'Authorization: Bearer <token>', or sign in with POST /api/login (the web UI does)")

router = APIRouter(prefix="/api", tags=["auth"])


def _tokens(settings: Settings) -> dict[Role, bytes]:
    out: dict[Role, bytes] = {}
    if settings.api_token is not None:
        out["write"] = settings.api_token.get_secret_value().encode()
    if settings.api_read_token is not None:
        out["read"] = settings.api_read_token.get_secret_value().encode()
    return out


def _mac(token: bytes, role: Role, expires: int) -> str:
    key = hashlib.sha256(b"taskq-session\0" + token).digest()
    return hmac.new(key, f"{role}.{expires}".encode(), hashlib.sha256).hexdigest()


def session_value(settings: Settings, role: Role, *, now: float | None = None) -> tuple[str, int]:
    """A signed session cookie for ``role`` and when it expires (epoch seconds)."""
    expires = int((now if now is not None else time.time()) + settings.api_session_ttl)
    return f"{role}.{expires}.{_mac(_tokens(settings)[role], role, expires)}", expires


def session_role(settings: Settings, value: str, *, now: float | None = None) -> tuple[Role, int] | None:
    """The role and expiry a session cookie grants, or None (malformed, forged, expired, token changed)."""
    role, _, rest = value.partition(".")
    expires_s, _, mac = rest.partition(".")
    tokens = _tokens(settings)
    if role not in tokens or not expires_s.isdigit() or len(expires_s) > 12:
        return None
    expires = int(expires_s)
    if expires <= (now if now is not None else time.time()):
        return None
    r: Role = "write" if role == "write" else "read"
    if not hmac.compare_digest(mac, _mac(tokens[r], r, expires)):
        return None
    return r, expires


def token_role(settings: Settings, given: str) -> Role | None:
    """The role of a token as given (compared in constant time with each configured one)."""
    found: Role | None = None
    for role, token in _tokens(settings).items():
        if hmac.compare_digest(given.encode(), token):
            found = role
    return found


def caller(request: Request) -> tuple[Role | None, str | None]:
    """The caller's role and how it was shown (``bearer``, ``cookie``, ``open`` when no token is set)."""
    settings: Settings = request.app.state.settings
    if settings.api_token is None:
        return "write", "open"
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        return token_role(settings, given.strip()), "bearer"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        found = session_role(settings, cookie)
        if found is not None:
            return found[0], "cookie"
    return None, None


async def require_token(request: Request) -> None:
    """Every /api route but the sign-in ones: 401 without a valid token or session, 403 for an action
    by the read-only token (or a cookie-authenticated one from another site)."""
    role, via = caller(request)
    if role is None:
        detail = IN_URL if "token" in request.query_params else UNAUTHORIZED
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})
    request.state.role = role
    if request.method in SAFE_METHODS:
        return
    if role == "read":
        action = f"{request.method} {request.url.path}"
        raise HTTPException(status.HTTP_403_FORBIDDEN, READ_ONLY.format(action=action))
    if via == "cookie" and request.headers.get("sec-fetch-site", "") in FOREIGN_SITES:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "a signed-in browser session only acts from the taskq UI's own origin")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=4096, description="TASKQ_API_TOKEN or TASKQ_API_READ_TOKEN")


class Session(BaseModel):
    auth_required: bool = Field(description="Whether this API asks for a token at all")
    role: Role | None = Field(description="write: may do everything; read: may read everything; null: signed out")
    can_write: bool
    expires_at: float | None = Field(None, description="When the session cookie expires (epoch seconds)")
    via: str | None = Field(None, description="cookie, bearer, or open (no token configured)")


def _secure(settings: Settings, request: Request) -> bool:
    if settings.api_cookie_secure is not None:
        return settings.api_cookie_secure
    return request.url.scheme == "https"


def _session(settings: Settings, role: Role | None, via: str | None, expires: float | None = None) -> Session:
    return Session(auth_required=settings.api_token is not None, role=role, can_write=role == "write",
                   expires_at=expires, via=via)


@router.get("/session", response_model=Session)
async def get_session(request: Request) -> Session:
    """Who this request is: never 401, so a page can ask before it signs in."""
    settings: Settings = request.app.state.settings
    role, via = caller(request)
    expires = None
    if via == "cookie":
        found = session_role(settings, request.cookies.get(COOKIE, ""))
        expires = found[1] if found else None
    return _session(settings, role, via, expires)


@router.post("/login", response_model=Session, responses={401: {"description": "Wrong token"}})
async def login(body: LoginBody, request: Request, response: Response) -> Session:
    """Trade a token for a session cookie (HttpOnly, SameSite=Strict, path /api; Secure over HTTPS or
    with TASKQ_API_COOKIE_SECURE=true)."""
    settings: Settings = request.app.state.settings
    if settings.api_token is None:
        return _session(settings, "write", "open")
    role = token_role(settings, body.token.strip())
    if role is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong API token")
    value, expires = session_value(settings, role)
    response.set_cookie(COOKIE, value, max_age=int(settings.api_session_ttl), path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=_secure(settings, request))
    return _session(settings, role, "cookie", expires)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request) -> Response:
    """End this browser's session: the cookie is deleted (it is refused anyway once it expires)."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=_secure(request.app.state.settings, request))
    return response
