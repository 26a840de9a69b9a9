"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from ..client import Client
from ..settings import Settings


# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its threadpool, and
# each hop costs a GIL handover that, under load, made every request wait on the others.
async def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def require_token(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value()
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if not given and request.url.path == "/api/events":
        given, scheme = request.query_params.get("token", ""), "Bearer"  # EventSource cannot set headers
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing or wrong API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


ClientDep = Annotated[Client, Depends(get_client)]
