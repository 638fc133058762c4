"""Fit jobs: the queue, and every transition of a job's state.

Each transition is a single statement that checks the state it expects (and,
for a worker, that it still holds the job), so a transition that lost a race
changes nothing and says so by returning False.

    queued --claim--> running --succeed--> succeeded
      |                  |-----fail------> failed
      |                  |-----cancelled-> cancelled   (cancel requested)
      |                  |-----release--> queued       (worker draining)
      |                  '-----lease expires: claimed again, or failed after max_attempts
      '--cancel--> cancelled
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import Database
from .db.queries import get_owned
from .db.tables import (
    ACTIVE_JOB_STATUSES,
    DatasetRow,
    DatasetStatus,
    JobRow,
    JobStatus,
    ModelRow,
    ModelStatus,
    new_id,
    utcnow,
)
from .errors import Conflict
from .pagination import Page, paginate

__all__ = [
    "Claim",
    "cancel",
    "cancel_import",
    "claim",
    "enqueue_job",
    "fail",
    "fail_import",
    "finish_cancelled",
    "get_job",
    "list_jobs",
    "release",
    "renew",
    "succeed",
    "succeed_import",
]


# --- reads ---------------------------------------------------------------------


def get_job(*, session: Session, tenant: str, job_id: str) -> JobRow:
    return get_owned(session, JobRow, job_id, tenant=tenant, noun="job")


def list_jobs(
    *,
    session: Session,
    tenant: str,
    limit: int,
    cursor: str | None,
    model_id: str | None = None,
    status: JobStatus | None = None,
) -> Page:
    statement = select(JobRow).where(JobRow.tenant == tenant)
    if model_id is not None:
        statement = statement.where(JobRow.model_id == model_id)
    if status is not None:
        statement = statement.where(JobRow.status == status)
    return paginate(session, statement, JobRow, limit=limit, cursor=cursor)


# --- the API's transitions -------------------------------------------------------


def enqueue_job(
    *,
    session: Session,
    model: ModelRow,
    dataset_id: str | None,
    data: bytes | None,
    sample_weight: bytes | None,
    warm_start: bool = False,
    activate: bool = True,
    kind: str = "fit",
    options: dict[str, Any] | None = None,
) -> JobRow:
    """Queue a fit or a selection of ``model``; 409 if one is already queued or running."""
    model_id = model.id  # a failed flush expires ``model``
    job = JobRow(
        id=new_id("job"),
        tenant=model.tenant,
        model_id=model.id,
        dataset_id=dataset_id,
        kind=kind,
        options=options,
        status=JobStatus.queued,
        progress={
            "init": 0,
            "n_init": model.n_init,
            "iteration": 0,
            "max_iter": model.max_iter,
            "lower_bound": None,
        },
        attempts=0,
        warm_start=warm_start,
        activate=activate,
        cancel_requested=False,
        data=data,
        sample_weight=sample_weight,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError:  # the partial unique index on active jobs per model
        raise Conflict(
            f"model {model_id!r} already has a fit or selection queued or running; "
            "wait for it or cancel it"
        ) from None
    model.status = ModelStatus.fitting
    return job


def cancel(*, session: Session, tenant: str, job_id: str) -> JobRow:
    """Stop a queued job now; ask a running one to stop at its next iteration."""
    job = get_job(session=session, tenant=tenant, job_id=job_id)
    now = utcnow()
    stopped = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, finished_at=now)
    ).rowcount
    if stopped:
        _settle_model(session, job.model_id, failed=False)
        _settle_import(session, job)
    else:
        asked = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == JobStatus.running)
            .values(cancel_requested=True)
        ).rowcount
        if not asked:
            raise Conflict(f"job {job_id!r} has already finished ({job.status.value})")
    session.refresh(job)
    return job


# --- the worker's transitions ----------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds (``model_id`` None: an import)."""

    job_id: str
    model_id: str | None
    attempt: int


def _claimable(now: datetime):
    return (JobRow.status == JobStatus.queued) | (
        (JobRow.status == JobStatus.running) & (JobRow.lease_expires_at < now)
    )


def _fail_exhausted(session: Session, now: datetime, max_attempts: int) -> None:
    """Jobs whose worker died ``max_attempts`` times end failed."""
    dead = session.scalars(
        select(JobRow).where(
            JobRow.status == JobStatus.running,
            JobRow.lease_expires_at < now,
            JobRow.attempts >= max_attempts,
        )
    ).all()
    for job in dead:
        lost = session.execute(
            update(JobRow)
            .where(
                JobRow.id == job.id,
                JobRow.status == JobStatus.running,
                JobRow.lease_expires_at < now,
            )
            .values(
                status=JobStatus.failed,
                finished_at=now,
                error={
                    "type": "worker_lost",
                    "detail": f"the worker running this job stopped {job.attempts} times; "
                    "giving up (max_attempts)",
                },
            )
        ).rowcount
        if lost:
            _settle_model(session, job.model_id, failed=True)
            _settle_import(session, job)


def claim(
    *, database: Database, worker_id: str, lease_seconds: float, max_attempts: int
) -> Claim | None:
    """Take the oldest queued job (or one whose worker's lease expired).

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent workers
    pass over each other's rows. SQLite: one conditional ``UPDATE`` (SQLite runs
    one writer at a time, so the statement is the lock).
    """
    now = utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    values = dict(
        status=JobStatus.running,
        worker_id=worker_id,
        lease_expires_at=expires,
        attempts=JobRow.attempts + 1,
        started_at=now,
        cancel_requested=False,
    )
    with database.session() as session:
        _fail_exhausted(session, now, max_attempts)
        candidates = (
            select(JobRow.id)
            .where(_claimable(now), JobRow.attempts < max_attempts)
            .order_by(JobRow.created_at, JobRow.id)
            .limit(1)
        )
        if database.is_sqlite:
            claimed = session.execute(
                update(JobRow)
                .where(JobRow.id == candidates.scalar_subquery(), _claimable(now))
                .values(**values)
                .returning(JobRow.id, JobRow.model_id, JobRow.attempts)
            ).first()
        else:
            job_id = session.scalar(candidates.with_for_update(skip_locked=True))
            claimed = None
            if job_id is not None:
                claimed = session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id)
                    .values(**values)
                    .returning(JobRow.id, JobRow.model_id, JobRow.attempts)
                ).first()
    return None if claimed is None else Claim(*claimed)


def _held(job_id: str, worker_id: str):
    return (
        (JobRow.id == job_id)
        & (JobRow.worker_id == worker_id)
        & (JobRow.status == JobStatus.running)
    )


def renew(
    *,
    session: Session,
    job_id: str,
    worker_id: str,
    lease_seconds: float,
    progress: dict[str, Any] | None = None,
    lower_bound_history: list[float] | None = None,
) -> bool:
    """Extend the lease (and record progress). False: the job was lost or asked to stop."""
    values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = progress
    if lower_bound_history is not None:
        values["lower_bound_history"] = lower_bound_history
    return bool(
        session.execute(
            update(JobRow)
            .where(_held(job_id, worker_id), JobRow.cancel_requested.is_(False))
            .values(**values)
        ).rowcount
    )


def succeed(
    *,
    session: Session,
    job_id: str,
    worker_id: str,
    result: dict[str, Any],
    progress: dict[str, Any] | None,
    lower_bound_history: list[float],
) -> str | None:
    """Mark the job succeeded; the model id, or None if the job is no longer ours.

    The caller stores the version the job made in the same transaction.
    """
    values: dict[str, Any] = dict(
        status=JobStatus.succeeded,
        result=result,
        finished_at=utcnow(),
        lower_bound_history=lower_bound_history,
    )
    if progress:
        values["progress"] = progress
    done = session.execute(
        update(JobRow)
        .where(_held(job_id, worker_id), JobRow.cancel_requested.is_(False))
        .values(**values)
        .returning(JobRow.model_id)
    ).first()
    return None if done is None else done.model_id


def fail(*, session: Session, job_id: str, worker_id: str, error: dict[str, str]) -> bool:
    done = session.execute(
        update(JobRow)
        .where(_held(job_id, worker_id))
        .values(status=JobStatus.failed, error=error, finished_at=utcnow())
        .returning(JobRow.model_id)
    ).first()
    if done is not None:
        _settle_model(session, done.model_id, failed=True)
    return done is not None


def finish_cancelled(*, session: Session, job_id: str, worker_id: str) -> bool:
    done = session.execute(
        update(JobRow)
        .where(_held(job_id, worker_id), JobRow.cancel_requested.is_(True))
        .values(status=JobStatus.cancelled, finished_at=utcnow())
        .returning(JobRow.model_id)
    ).first()
    if done is not None:
        _settle_model(session, done.model_id, failed=False)
    return done is not None


def release(*, session: Session, job_id: str, worker_id: str) -> bool:
    """Give a running job back to the queue (a draining worker), not counting the attempt.

    Its progress starts over (the next worker starts from the beginning): counters
    back to 0, ``lower_bound`` null, the lower-bound history emptied.
    """
    progress = session.scalar(select(JobRow.progress).where(_held(job_id, worker_id)))
    if progress is None:
        return False
    return bool(
        session.execute(
            update(JobRow)
            .where(_held(job_id, worker_id))
            .values(
                status=JobStatus.queued,
                worker_id=None,
                lease_expires_at=None,
                started_at=None,
                attempts=JobRow.attempts - 1,
                progress=_progress_reset(progress),
                lower_bound_history=[],
            )
        ).rowcount
    )


def _progress_reset(progress: dict[str, Any]) -> dict[str, Any]:
    """Progress as a job that has not started shows it: counts at 0, values null;
    totals (``n_init``, ``max_iter``, and any other ``n_*``/``max_*``) kept."""
    kept = {key for key in progress if key.startswith(("n_", "max_"))}
    return {
        key: value if key in kept or not isinstance(value, int | float) else None
        for key, value in progress.items()
    } | {key: 0 for key in ("init", "iteration") if key in progress}


def _settle_model(session: Session, model_id: str | None, *, failed: bool) -> None:
    """After a fit that stored nothing: back to ready if fitted before, else new/failed."""
    if model_id is None:  # an import: no model
        return
    active = session.scalar(
        select(JobRow.id).where(JobRow.model_id == model_id, JobRow.status.in_(ACTIVE_JOB_STATUSES))
    )
    if active is not None:
        return
    unfitted = ModelStatus.failed if failed else ModelStatus.new
    model = session.get(ModelRow, model_id)
    if model is not None:
        model.status = ModelStatus.ready if model.version > 0 else unfitted
        model.updated_at = utcnow()


# --- imports ---------------------------------------------------------------------------


def _settle_import(session: Session, job: JobRow) -> None:
    """An import that ended without its rows: its dataset is failed, never ready.

    (Chunks it wrote are removed by the worker when it fails the job itself;
    those of a worker that died stay in the store, unreferenced.)
    """
    if job.kind == "import" and job.dataset_id is not None:
        session.execute(
            update(DatasetRow)
            .where(DatasetRow.id == job.dataset_id, DatasetRow.status == DatasetStatus.importing)
            .values(status=DatasetStatus.failed, chunks=None)
        )


def fail_import(*, session: Session, job_id: str, worker_id: str, error: dict[str, str]) -> bool:
    """The import failed: the job failed and its dataset too, in one transaction."""
    job = session.get(JobRow, job_id)
    if job is None or not fail(session=session, job_id=job_id, worker_id=worker_id, error=error):
        return False
    _settle_import(session, job)
    return True


def cancel_import(*, session: Session, job_id: str, worker_id: str) -> bool:
    """The import stopped on a cancel: the job cancelled and its dataset failed."""
    job = session.get(JobRow, job_id)
    if job is None or not finish_cancelled(session=session, job_id=job_id, worker_id=worker_id):
        return False
    _settle_import(session, job)
    return True


def succeed_import(
    *,
    session: Session,
    job_id: str,
    worker_id: str,
    dataset: dict[str, Any],
    result: dict[str, Any],
    progress: dict[str, Any],
) -> bool:
    """The import's last commit: the dataset ready with its rows, the job succeeded.

    False (nothing changed) if the job is no longer this worker's or was cancelled.
    """
    done = session.execute(
        update(JobRow)
        .where(_held(job_id, worker_id), JobRow.cancel_requested.is_(False))
        .values(status=JobStatus.succeeded, result=result, progress=progress, finished_at=utcnow())
        .returning(JobRow.dataset_id)
    ).first()
    if done is None:
        return False
    session.execute(
        update(DatasetRow)
        .where(DatasetRow.id == done.dataset_id, DatasetRow.status == DatasetStatus.importing)
        .values(status=DatasetStatus.ready, **dataset)
    )
    return True
