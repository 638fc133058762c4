"""/v1/jobs: follow and cancel fits."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from ... import jobs
from ...db.tables import JobStatus
from ..deps import CursorQuery, DatabaseDep, LimitQuery
from ..problems import problems
from ..schemas import JobList, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

StatusQuery = Annotated[
    Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query()
]


@router.get("", response_model=JobList, responses=problems(422), summary="List jobs")
def list_jobs(
    database: DatabaseDep,
    model_id: Annotated[str | None, Query(max_length=40)] = None,
    status: StatusQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> JobList:
    with database.session() as session:
        page = jobs.list_jobs(
            session=session,
            limit=limit,
            cursor=cursor,
            model_id=model_id,
            status=None if status is None else JobStatus(status),
        )
        return JobList(
            items=[JobRead.model_validate(r) for r in page], next_cursor=page.next_cursor
        )


@router.get("/{job_id}", response_model=JobRead, responses=problems(404, 422), summary="Read a job")
def get_job(job_id: str, database: DatabaseDep) -> JobRead:
    with database.session() as session:
        return JobRead.model_validate(jobs.get_job(session=session, job_id=job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409, 422),
    summary="Stop a queued job now, a running one at its next iteration",
)
def cancel_job(job_id: str, database: DatabaseDep) -> JobRead:
    with database.session() as session:
        return JobRead.model_validate(jobs.cancel(session=session, job_id=job_id))
