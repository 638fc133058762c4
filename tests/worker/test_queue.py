"""The job queue across processes: workers never run the same job twice."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sqlalchemy import select

from service import jobs
from service.db import Database
from service.db.tables import JobRow, JobStatus, ModelRow

from .conftest import queue_fit, worker_process


def _queue(database: Database, settings, n_jobs: int) -> list[str]:
    data = np.random.default_rng(0).normal(size=(300, 2))
    return [
        queue_fit(
            database,
            settings,
            data,
            name=f"m{i}",
            covariance_type="diag",
            max_iter=50,
            random_state=i,
        )[1]
        for i in range(n_jobs)
    ]


@pytest.mark.postgres
def test_two_worker_processes_run_each_of_20_jobs_exactly_once(migrated_postgres, settings):
    database = Database(migrated_postgres)
    with database.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE jobs, models, datasets CASCADE")
    job_ids = _queue(database, settings, 20)
    workers = [worker_process(migrated_postgres) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with database.session() as session:
                done = session.scalars(
                    select(JobRow).where(JobRow.status == JobStatus.succeeded)
                ).all()
            if len(done) == len(job_ids):
                break
            time.sleep(0.1)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            assert worker.wait(timeout=30) == 0, worker.stderr.read().decode()[-2000:]
    with database.session() as session:
        rows = session.scalars(select(JobRow)).all()
        versions = session.scalars(select(ModelRow.version)).all()
    assert sorted(r.id for r in rows) == sorted(job_ids)
    assert all(r.status == JobStatus.succeeded and r.attempts == 1 for r in rows)
    assert versions == [1] * 20  # each model stored exactly one fit
    assert len({r.worker_id for r in rows}) == 2  # both workers took part
    database.dispose()


def test_a_claimed_job_is_not_claimed_again_while_its_lease_holds(database, settings):
    [job_id] = _queue(database, settings, 1)
    first = jobs.claim(database=database, worker_id="a", lease_seconds=30, max_attempts=3)
    assert first is not None and first.job_id == job_id
    assert jobs.claim(database=database, worker_id="b", lease_seconds=30, max_attempts=3) is None


def test_a_job_whose_lease_expired_is_claimed_again_by_another_worker(database, settings):
    [job_id] = _queue(database, settings, 1)
    jobs.claim(database=database, worker_id="a", lease_seconds=0.01, max_attempts=3)
    time.sleep(0.05)
    again = jobs.claim(database=database, worker_id="b", lease_seconds=30, max_attempts=3)
    assert again is not None and (again.job_id, again.attempt) == (job_id, 2)
    with database.session() as session:
        assert not jobs.renew(session=session, job_id=job_id, worker_id="a", lease_seconds=30)


def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(database, settings):
    [job_id] = _queue(database, settings, 1)
    for _ in range(2):
        jobs.claim(database=database, worker_id="a", lease_seconds=0.01, max_attempts=2)
        time.sleep(0.05)
    assert jobs.claim(database=database, worker_id="b", lease_seconds=30, max_attempts=2) is None
    with database.session() as session:
        job = session.get(JobRow, job_id)
        model = session.get(ModelRow, job.model_id)
        assert job.status == JobStatus.failed and job.error["type"] == "worker_lost"
        assert model.status == "failed"
