"""Who is calling and what they may do: the bearer token, the UI's session cookie, the read-only token.

A caller is ``write`` (``TASKQ_API_TOKEN``, or any caller when no token is set) or ``read``
(``TASKQ_API_READ_TOKEN``: every read, no action). The web UI never holds a token after signing
in: ``POST /api/login`` trades it for an HttpOnly, SameSite=Strict cookie, so nothing the page runs
can read it and it never travels in a URL (the event stream used to take ``?token=``).

The cookie is ``<role>.<expires>.<sid>.<mac>``, an HMAC keyed by the token of that role: any API
replica checks it without shared state, and changing a token ends every session signed with it.
Signing out revokes the session id in Redis until the cookie would have expired, so a copy taken
before stops working too. Failed sign-ins are counted per client address in Redis, across
replicas, and refused with 429 past ``TASKQ_API_LOGIN_ATTEMPTS`` a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Literal, cast

import redis.asyncio as aioredis
from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from ..audit import token_id
from ..errors import TaskqError
from ..settings import Settings
from ..store import translate_errors

Role = Literal["write", "read"]
COOKIE = "taskq_session"
# The cookie goes only to the API: the UI's static files need none.
COOKIE_PATH = "/api"
SID_BYTES = 12
SID = re.compile(rf"[0-9a-f]{{{SID_BYTES * 2}}}")
LOGIN_WINDOW = 60  # seconds over which failed sign-ins are counted
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
log = logging.getLogger("taskq.audit")


def _tokens(settings: Settings) -> dict[Role, bytes]:
    out: dict[Role, bytes] = {}
    if settings.api_token is not None:
        out["write"] = settings.api_token.get_secret_value().encode()
    if settings.api_read_token is not None:
        out["read"] = settings.api_read_token.get_secret_value().encode()
    return out


def _mac(token: bytes, role: Role, expires: int, sid: str) -> str:
    key = hashlib.sha256(b"taskq-session\0" + token).digest()
    return hmac.new(key, f"{role}.{expires}.{sid}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a valid session cookie grants: a role until ``expires`` (epoch seconds), under the id ``sid``."""

    role: Role
    expires: int
    sid: str


def session_value(settings: Settings, role: Role, *, now: float | None = None) -> tuple[str, int]:
    """A signed session cookie for ``role`` (with a fresh session id) and when it expires (epoch seconds)."""
    expires = int((now if now is not None else time.time()) + settings.api_session_ttl)
    sid = secrets.token_hex(SID_BYTES)
    return f"{role}.{expires}.{sid}.{_mac(_tokens(settings)[role], role, expires, sid)}", expires


def session_role(settings: Settings, value: str, *, now: float | None = None) -> SessionGrant | None:
    """What a session cookie grants, or None (malformed, forged, expired, token changed). Whether it
    was revoked is Redis' to say (``revoked``)."""
    parts = value.split(".")
    if len(parts) != 4:
        return None
    role, expires_s, sid, mac = parts
    tokens = _tokens(settings)
    if role not in tokens or not expires_s.isdigit() or len(expires_s) > 12 or not SID.fullmatch(sid):
        return None
    expires = int(expires_s)
    if expires <= (now if now is not None else time.time()):
        return None
    r: Role = "write" if role == "write" else "read"
    if not hmac.compare_digest(mac, _mac(tokens[r], r, expires, sid)):
        return None
    return SessionGrant(r, expires, sid)


def token_role(settings: Settings, given: str) -> Role | None:
    """The role of a token as given (compared in constant time with each configured one)."""
    found: Role | None = None
    for role, token in _tokens(settings).items():
        if hmac.compare_digest(given.encode(), token):
            found = role
    return found


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: ``role`` (None: nobody we know), how it was shown (``bearer``, ``cookie``, or
    ``open`` when no token is set), the token's id (``audit.token_id``) and the session, if any."""

    role: Role | None
    via: str | None = None
    token: str = ""
    session: SessionGrant | None = None


def caller(request: Request) -> Caller:
    """The caller as its credentials say, before any revocation check (``authenticated`` does that)."""
    settings: Settings = request.app.state.settings
    if settings.api_token is None:
        return Caller("write", "open")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given:
        role = token_role(settings, given.strip())
        return Caller(role, "bearer", token_name(settings, role) if role else "")
    cookie = request.cookies.get(COOKIE)
    if cookie:
        grant = session_role(settings, cookie)
        if grant is not None:
            return Caller(grant.role, "cookie", token_name(settings, grant.role), grant)
    return Caller(None)


def token_name(settings: Settings, role: Role) -> str:
    """The id the audit trail gives a role's token (``audit.token_id``, keyed with the write token)."""
    tokens = _tokens(settings)
    return token_id(tokens[role], key=tokens["write"])


async def authenticated(request: Request) -> Caller:
    """``caller``, with a signed-out (revoked) session refused and wrong bearer tokens counted per
    address (429 past the limit, whatever the token); kept on ``request.state.caller``."""
    found = caller(request)
    if found.via == "bearer":
        limit: SignInLimit = request.app.state.sign_in_limit
        limit.refuse_if_locked(request)
        if found.role is None:
            await limit.failed(request)
    if found.session is not None and await revoked(request, found.session.sid):
        found = Caller(None)
    request.state.caller = found
    return found


def _async_redis(request: Request) -> aioredis.Redis:
    return cast(aioredis.Redis, request.app.state.client.store.async_redis())


def _revoked_key(request: Request, sid: str) -> str:
    return cast(str, request.app.state.client.store.key("session", "revoked", sid))


async def revoked(request: Request, sid: str) -> bool:
    """Whether the session ``sid`` was signed out (on any replica)."""
    with translate_errors():
        return bool(await _async_redis(request).exists(_revoked_key(request, sid)))


class SignInLimit:
    """Wrong tokens per client address, counted in Redis across replicas.

    A sign-in counts its attempt before the token is compared (and takes it back if the token is
    right), so a burst of concurrent guesses cannot all slip under the limit; a wrong bearer token
    counts too. Past ``limit`` in a minute the address is refused with 429, the right token as well,
    so the answer tells a guesser nothing. Each replica remembers the addresses it refused until
    their minute ends, so a caller with a bearer token costs Redis nothing unless it is wrong."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._locked: dict[str, float] = {}  # address -> when (monotonic) its refusal ends

    def _key(self, request: Request) -> str:
        return cast(str, request.app.state.client.store.key("login", "failures", client_address(request)))

    def refuse_if_locked(self, request: Request) -> None:
        until = self._locked.get(client_address(request))
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            self._locked.pop(client_address(request), None)
            return
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many wrong tokens from this address: try again in {int(left) + 1} s",
                            headers={"Retry-After": str(int(left) + 1)})

    async def _count(self, request: Request, by: int) -> tuple[int, int]:
        key = self._key(request)
        with translate_errors():
            async with _async_redis(request).pipeline(transaction=True) as pipe:
                pipe.incrby(key, by)
                pipe.expire(key, LOGIN_WINDOW, nx=True)
                pipe.ttl(key)
                count, _, ttl = await pipe.execute()
        return int(count), max(1, int(ttl)) if int(ttl) > 0 else LOGIN_WINDOW

    async def attempt(self, request: Request) -> int:
        """Count a sign-in before its token is compared; 429 once the address is past the limit."""
        self.refuse_if_locked(request)
        count, left = await self._count(request, 1)
        if count > self.limit:
            self._locked[client_address(request)] = time.monotonic() + left
            self.refuse_if_locked(request)
        return count

    async def succeeded(self, request: Request) -> None:
        """A sign-in whose token was right: its attempt is not a guess."""
        await self._count(request, -1)

    async def failed(self, request: Request) -> int:
        """Count a wrong bearer token; from the limit on, the address is refused until its minute ends."""
        count, left = await self._count(request, 1)
        if count >= self.limit:
            if count == self.limit:
                log.warning("audit: %d wrong tokens from %s within a minute: it is refused for %d s",
                            count, client_address(request), left)
            self._locked[client_address(request)] = time.monotonic() + left
            if count > self.limit:
                self.refuse_if_locked(request)
        return count


async def require_token(request: Request) -> None:
    """Every /api route but the sign-in ones: 401 without a valid token or session, 403 for an action
    by the read-only token (or a cookie-authenticated one from another site)."""
    found = await authenticated(request)
    role, via = found.role, found.via
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
    found = await authenticated(request)
    expires = found.session.expires if found.session else None
    return _session(request.app.state.settings, found.role, found.via, expires)


def client_address(request: Request) -> str:
    """The caller's address (the real client's when a trusted proxy forwarded it)."""
    return request.client.host if request.client else "unknown"


@router.post("/login", response_model=Session, responses={
    401: {"description": "Wrong token"},
    429: {"description": "Too many failed sign-ins from this address this minute (with Retry-After)"}})
async def login(body: LoginBody, request: Request, response: Response) -> Session:
    """Trade a token for a session cookie (HttpOnly, SameSite=Strict, path /api; Secure over HTTPS, as
    a trusted proxy's X-Forwarded-Proto says, or with TASKQ_API_COOKIE_SECURE=true)."""
    settings: Settings = request.app.state.settings
    if settings.api_token is None:
        return _session(settings, "write", "open")
    limit: SignInLimit = request.app.state.sign_in_limit
    attempts = await limit.attempt(request)  # 429 past the limit, before the token is compared
    role = token_role(settings, body.token.strip())
    if role is None:
        # The first wrong token of a minute and the one that reaches the limit are audited, not
        # each guess: guessing must not push real actions out of the capped trail.
        if attempts in (1, limit.limit):
            request.state.caller = Caller(None, "login")
            request.state.audit = (f"wrong token ({attempts} wrong from this address this minute"
                                   + ("; refused for the rest of it)" if attempts == limit.limit else ")"))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong API token")
    await limit.succeeded(request)
    value, expires = session_value(settings, role)
    request.state.caller = Caller(role, "login", token_name(settings, role))
    request.state.audit = f"signed in as {role}"
    response.set_cookie(COOKIE, value, max_age=int(settings.api_session_ttl), path=COOKIE_PATH, httponly=True,
                        samesite="strict", secure=_secure(settings, request))
    return _session(settings, role, "cookie", expires)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request) -> Response:
    """End this browser's session: the cookie is deleted, and its session id revoked until it would
    have expired, so a copy of it taken before is refused too."""
    settings: Settings = request.app.state.settings
    request.state.caller = caller(request)
    grant = session_role(settings, request.cookies.get(COOKIE, "")) if settings.api_token is not None else None
    if grant is not None:
        ttl = max(1, grant.expires - int(time.time()))
        try:
            with translate_errors():
                await _async_redis(request).set(_revoked_key(request, grant.sid), "1", ex=ttl)
        except TaskqError as exc:
            # The browser's cookie goes anyway; a copy of it stays valid until it expires.
            log.warning("audit: signing out could not revoke the session in Redis (%s); a copy of "
                        "its cookie stays valid until it expires", exc)
            request.state.audit = f"session not revoked: {exc}"
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=_secure(settings, request))
    return response
