"""/v1/jobs: follow and cancel fits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from ... import jobs
from ...db import Database
from ...db.faults import is_transient
from ...db.tables import JobStatus
from ...errors import NotFound
from ..deps import CursorQuery, DatabaseDep, LimitQuery, TenantDep
from ..problems import problems
from ..schemas import JobList, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

StatusQuery = Annotated[
    Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query()
]


@router.get("", response_model=JobList, responses=problems(422), summary="List jobs")
def list_jobs(
    database: DatabaseDep,
    tenant: TenantDep,
    model_id: Annotated[str | None, Query(max_length=40)] = None,
    status: StatusQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> JobList:
    with database.session() as session:
        page = jobs.list_jobs(
            session=session,
            tenant=tenant,
            limit=limit,
            cursor=cursor,
            model_id=model_id,
            status=None if status is None else JobStatus(status),
        )
        return JobList(
            items=[JobRead.model_validate(r) for r in page], next_cursor=page.next_cursor
        )


@router.get("/{job_id}", response_model=JobRead, responses=problems(404, 422), summary="Read a job")
def get_job(job_id: str, database: DatabaseDep, tenant: TenantDep) -> JobRead:
    with database.session() as session:
        return JobRead.model_validate(jobs.get_job(session=session, tenant=tenant, job_id=job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409, 422),
    summary="Stop a queued job now, a running one at its next iteration",
)
def cancel_job(job_id: str, database: DatabaseDep, tenant: TenantDep) -> JobRead:
    with database.session() as session:
        return JobRead.model_validate(jobs.cancel(session=session, tenant=tenant, job_id=job_id))


def _read_job(database: Database, tenant: str, job_id: str) -> JobRead:
    with database.session() as session:
        return JobRead.model_validate(jobs.get_job(session=session, tenant=tenant, job_id=job_id))


def _existing_job(job_id: str, database: DatabaseDep, tenant: TenantDep) -> JobRead:
    """404 before the stream starts, for an unknown job."""
    return _read_job(database, tenant, job_id)


POLL_SECONDS = 0.2


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses=problems(404, 422),
    summary="Server-Sent Events: the job's progress, then its final state",
    description=(
        "A `progress` event whenever the job's progress changes, then one event named "
        "after the final state (`succeeded`, `failed` or `cancelled`) with the whole job, "
        "and the stream closes. Progress is read from the database, so any API replica "
        "can serve it. Try `curl -N`. When the server shuts down, the stream ends with a "
        "`shutdown` event (`{id, status, detail}`): reconnect to another replica, or later."
    ),
)
async def job_events(
    job_id: str,
    request: Request,
    database: DatabaseDep,
    tenant: TenantDep,
    first: Annotated[JobRead, Depends(_existing_job)],
) -> AsyncIterator[ServerSentEvent]:
    job, last = first, None
    draining = request.app.state.shutdown.draining
    while True:
        if draining.is_set():
            yield ServerSentEvent(
                event="shutdown",
                data={
                    "id": job_id,
                    "status": job.status,
                    "detail": "the server is shutting down; reconnect to follow the job",
                },
                retry=1000,
            )
            return
        state = (job.status, job.progress.model_dump())
        if state != last:
            last = state
            event = job.status if job.status in ("succeeded", "failed", "cancelled") else "progress"
            payload = (
                job.model_dump(mode="json")
                if event != "progress"
                else {"status": job.status, **job.progress.model_dump(mode="json")}
            )
            yield ServerSentEvent(event=event, data=payload, id=str(job.progress.iteration))
            if event != "progress":
                return
        await anyio.sleep(POLL_SECONDS)
        if draining.is_set():
            continue
        try:
            job = await anyio.to_thread.run_sync(_read_job, database, tenant, job_id)
        except NotFound:  # deleted with its model while we watched
            yield ServerSentEvent(event="deleted", data={"id": job_id})
            return
        except Exception as error:
            if not is_transient(error):
                raise
            continue  # the database blinked: keep the stream, read again at the next poll
