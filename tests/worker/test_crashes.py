"""Jobs survive crashes: a killed worker's job is re-run, a stopped one is handed back."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.db import Database
from service.db.tables import PUBLIC_TENANT, JobRow, JobStatus, ModelRow
from service.models import create_model, request_select
from service.versions import load_parameters

from ..conftest import wait_for_job
from .conftest import DEFAULT_CONFIG, queue_fit, worker_process

CONFIG = dict(name="slow", n_components=6, tol=0.0, max_iter=400)


def _queue_slow_fit(database: Database, settings, **overrides) -> tuple[str, str]:
    data = np.random.default_rng(0).normal(size=(40000, 3))
    return queue_fit(database, settings, data, **{**CONFIG, **overrides})


def _worker(database_url: str, lease_seconds: float = 1.0):
    return worker_process(
        database_url,
        worker_poll_seconds="0.05",
        lease_seconds=str(lease_seconds),
        progress_interval_seconds="0.05",
    )


def _job(database: Database, job_id: str) -> JobRow:
    with database.session() as session:
        return session.get(JobRow, job_id)


def _wait(database: Database, job_id: str, predicate, timeout: float = 60.0) -> JobRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(database, job_id)
        if predicate(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the state: {job.status}, {job.progress}")


def test_a_job_whose_worker_is_killed_is_rerun_by_another(database, settings):
    model_id, job_id = _queue_slow_fit(database, settings)
    first = _worker(settings.resolved_database_url)
    _wait(
        database, job_id, lambda j: j.status == JobStatus.running and j.progress["iteration"] >= 3
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = _worker(settings.resolved_database_url)
    try:
        job = _wait(
            database, job_id, lambda j: j.status not in (JobStatus.queued, JobStatus.running)
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert job.status == JobStatus.succeeded and job.attempts == 2
    assert len(job.lower_bound_history) == CONFIG["max_iter"]  # one complete fit, from the start
    with database.session() as session:
        model = session.get(ModelRow, model_id)
        assert model.version == 1 and model.active_version == 1
        stored = load_parameters(session=session, model_id=model_id, version=1)
    assert stored.n_components == CONFIG["n_components"]


def test_sigterm_hands_the_running_job_back_and_exits_zero(database, settings):
    _, job_id = _queue_slow_fit(database, settings, max_iter=10000)
    worker = _worker(settings.resolved_database_url, lease_seconds=30)
    _wait(
        database, job_id, lambda j: j.status == JobStatus.running and j.progress["iteration"] >= 2
    )
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.stderr.read().decode()[-2000:]
    job = _job(database, job_id)
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.queued, 0, None)


@pytest.mark.parametrize("stop", ["restart"])
def test_restarting_the_api_loses_no_queued_job(settings, database, stop):
    data = np.random.default_rng(1).normal(size=(300, 2))
    with TestClient(create_app(settings, database=database, embedded_worker=False)) as client:
        model_id = client.post("/v1/models", json={"n_components": 2}).json()["id"]
        job_id = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()[
            "id"
        ]
    with TestClient(create_app(settings, database=database)) as client:
        assert wait_for_job(client, job_id)["status"] == "succeeded"


def _queue_slow_selection(database: Database, settings) -> tuple[str, str]:
    data = np.random.default_rng(0).normal(size=(8000, 3))
    with database.session() as session:
        model = create_model(
            session=session,
            tenant=PUBLIC_TENANT,
            config={**DEFAULT_CONFIG, "max_iter": 200, "tol": 0.0},
            settings=settings,
        )
        job = request_select(
            session=session,
            tenant=PUBLIC_TENANT,
            model_id=model.id,
            dataset_id=None,
            data=data,
            sample_weight=None,
            n_components=[4, 5],
            covariance_types=["full", "diag"],
            criterion="bic",
            n_init=None,
            random_state=0,
            activate=True,
            settings=settings,
        )
        return model.id, job.id


def test_a_selection_whose_worker_is_killed_is_rerun_by_another(database, settings):
    model_id, job_id = _queue_slow_selection(database, settings)
    first = _worker(settings.resolved_database_url)
    _wait(
        database,
        job_id,
        lambda j: (
            j.status == JobStatus.running
            and (j.progress.get("candidate") or {}).get("completed", 0) >= 1
        ),
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = _worker(settings.resolved_database_url)
    try:
        job = _wait(
            database,
            job_id,
            lambda j: j.status not in (JobStatus.queued, JobStatus.running),
            timeout=120,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    assert job.status == JobStatus.succeeded and job.attempts == 2, job.error
    assert len(job.result["candidates"]) == 4
    with database.session() as session:
        assert session.get(ModelRow, model_id).active_version == 1
