"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..client import Client
from .auth import require_token


# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its threadpool, and
# each hop costs a GIL handover that, under load, made every request wait on the others.
async def get_client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


ClientDep = Annotated[Client, Depends(get_client)]

__all__ = ["ClientDep", "get_client", "require_token"]
