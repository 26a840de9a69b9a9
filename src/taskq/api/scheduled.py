"""/api/scheduled: tasks waiting for a due time (delayed submissions, retries in their backoff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..due import DuePage, due_page
from .deps import ClientDep

router = APIRouter(prefix="/api", tags=["tasks"])


@router.get("/scheduled", response_model=DuePage)
def list_scheduled(
    client: ClientDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> DuePage:
    """Soonest due first, each record with ``due_at`` (when it is produced to Kafka); ``total``
    counts every waiting task, ``later`` those due after now. Pass ``next_cursor`` as ``cursor``."""
    return due_page(client.store, limit=limit, cursor=cursor)
