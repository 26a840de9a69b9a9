"""/api/schedules: periodic schedules — list, create, read, delete, pause, resume, run now."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from .. import limits
from ..schedules import CATCHUP_MAX, GRACE_MAX, NAME_MAX, ScheduleInfo
from .audit import note
from .deps import ClientDep
from .schemas import Submitted

router = APIRouter(prefix="/api/schedules", tags=["schedules"])


class ScheduleBody(BaseModel):
    """A schedule to create: exactly one of ``cron`` and ``every``. The rules (cron syntax, timezone,
    bounds) are checked by ``taskq.schedules.Schedule``, which answers 422 with what is wrong."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX, description="Unique name, e.g. nightly-report")
    task: str = Field(min_length=1, max_length=limits.TASK_NAME_MAX, description="Task name, e.g. add")
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = Field(None, description="Five-field cron expression, e.g. */5 * * * *")
    every: float | None = Field(None, description="Interval in seconds (ticks on multiples of it since the epoch)")
    timezone: str = Field("UTC", description="IANA timezone of the cron expression, e.g. Europe/Berlin")
    missed: Literal["skip", "catchup"] = Field("skip", description="What to do with ticks missed in an outage")
    catchup: int = Field(0, ge=0, le=CATCHUP_MAX, description="With missed=catchup: at most this many missed ticks")
    misfire_grace: float = Field(5.0, ge=0, le=GRACE_MAX, description="Seconds late a tick may still run")
    paused: bool = False
    max_retries: int | None = Field(None, ge=0, le=limits.MAX_RETRIES_MAX)
    timeout: float | None = Field(None, gt=0, le=limits.TIMEOUT_MAX, description="Time limit in seconds")


@router.get("", response_model=list[ScheduleInfo])
def list_schedules(client: ClientDep) -> list[ScheduleInfo]:
    """Every schedule with ``next_at`` (null while paused), ``last_at``, ``last_task_id`` and
    ``last_status`` (the last run's outcome), the next due first."""
    return client.schedules()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScheduleInfo,
             responses={409: {"description": "A schedule of this name exists"},
                        422: {"description": "Invalid cron, timezone, interval, name or task"}})
def create_schedule(body: ScheduleBody, request: Request, client: ClientDep) -> ScheduleInfo:
    """Create a schedule; its first tick is the next one after now."""
    info = client.add_schedule(body.name, body.task, known_tasks=client.known_tasks([body.task]),
                               **body.model_dump(exclude={"name", "task"}))
    when = f"cron {body.cron!r} {body.timezone}" if body.cron else f"every {body.every:g} s"
    note(request, f"schedule {body.name}: task {body.task}, {when}" + (", paused" if body.paused else ""))
    return info


@router.get("/{name}", response_model=ScheduleInfo)
def get_schedule(name: str, client: ClientDep) -> ScheduleInfo:
    return client.schedule(name)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule(name: str, client: ClientDep) -> Response:
    client.delete_schedule(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/pause", response_model=ScheduleInfo)
def pause_schedule(name: str, client: ClientDep) -> ScheduleInfo:
    return client.pause_schedule(name)


@router.post("/{name}/resume", response_model=ScheduleInfo)
def resume_schedule(name: str, client: ClientDep) -> ScheduleInfo:
    """Resume from the next tick after now; ticks while paused are not caught up."""
    return client.resume_schedule(name)


@router.post("/{name}/run", status_code=status.HTTP_202_ACCEPTED, response_model=Submitted)
def run_schedule(name: str, client: ClientDep) -> Submitted:
    """Submit one extra run of the schedule's task now; it becomes the schedule's last run."""
    return Submitted(id=client.run_schedule_now(name))
