"""/api/dead-letters: what ended on the dead-letter topic, why, and a way back (replay)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .deps import ClientDep

router = APIRouter(prefix="/api", tags=["dead letters"])
PartitionPath = Annotated[int, Path(ge=0, le=100_000)]
OffsetPath = Annotated[int, Path(ge=0)]


class Replay(BaseModel):
    """A corrected task to submit in the letter's place; what is left out is the letter's own."""

    model_config = {"extra": "forbid"}
    task: str | None = Field(None, min_length=1, max_length=200)
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None


@router.get("/dead-letters")
async def list_dead_letters(client: ClientDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """The newest dead letters, newest first: ``kind`` is ``task`` (it ran and ended dead) or
    ``message`` (it could never run: its raw bytes are kept), with the reason and a preview."""
    letters = await run_in_threadpool(client.dead_letters, limit=limit)
    return {"items": [d.to_dict() for d in letters]}


@router.get("/dead-letters/{partition}/{offset}")
async def get_dead_letter(client: ClientDep, partition: PartitionPath, offset: OffsetPath) -> dict[str, Any]:
    d = await run_in_threadpool(client.dead_letter, partition, offset)
    return d.to_dict()


@router.get("/dead-letters/{partition}/{offset}/raw", response_class=Response)
async def download_dead_letter(client: ClientDep, partition: PartitionPath, offset: OffsetPath) -> Response:
    """The bytes as they arrived on the tasks topic (a message), or the letter itself (a task)."""
    d = await run_in_threadpool(client.dead_letter, partition, offset)
    name = f"dead-letter-{partition}-{offset}.{'bin' if d.kind == 'message' else 'json'}"
    return Response(d.raw, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/dead-letters/{partition}/{offset}/replay", status_code=202)
async def replay_dead_letter(client: ClientDep, partition: PartitionPath, offset: OffsetPath,
                             body: Replay | None = None) -> dict[str, str]:
    """Submit it again as a new task (a new id): the letter's own task and arguments, or the corrected
    ones in the body (a message that never decoded needs ``task`` and ``args``)."""
    fix = body or Replay()
    tid = await run_in_threadpool(client.replay_dead_letter, partition, offset, task=fix.task, args=fix.args,
                                  kwargs=fix.kwargs)
    return {"id": tid, "status": "queued"}
