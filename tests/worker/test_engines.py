"""Which engine runs a fit: in memory, out-of-core in the worker, or on Dask."""

from __future__ import annotations

import distributed
import numpy as np
import pytest
from sqlalchemy import select

from service import versions
from service.db.tables import JobRow, JobStatus
from service.worker.runner import Worker

from ..gmm.conftest import make_blobs
from .conftest import queue_fit

# The module's LocalCluster starts once, on one worker (pytest-xdist), not once on each.
pytestmark = pytest.mark.xdist_group("dask-engines")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(41, 4000, 3, 3, spread=6.0)


def run_fit(database, settings, data, **config):
    model_id, job_id = queue_fit(database, settings, data, n_components=3, **config)
    assert Worker(database, settings).run_once()
    with database.session() as session:
        job = session.scalars(select(JobRow).where(JobRow.id == job_id)).one()
        parameters = versions.load_parameters(session=session, model_id=model_id, version=1)
        return job, parameters


def assert_same_parameters(actual, expected):
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(actual, name), getattr(expected, name), rtol=1e-10, atol=1e-10
        )


def test_data_under_the_in_memory_limit_fit_in_memory(database, settings, blobs):
    job, _ = run_fit(database, settings, blobs)
    assert job.status == JobStatus.succeeded and job.result["engine"] == "in_memory"


def test_data_over_the_in_memory_limit_fit_out_of_core_with_the_same_answer(
    database, settings, blobs
):
    _, expected = run_fit(database, settings, blobs)
    streamed = settings.model_copy(update={"in_memory_max_bytes": blobs.nbytes - 1})
    job, parameters = run_fit(database, streamed, blobs)
    assert job.status == JobStatus.succeeded and job.result["engine"] == "out_of_core"
    assert_same_parameters(parameters, expected)


def test_with_a_dask_scheduler_big_fits_run_on_the_cluster_with_the_same_answer(
    database, settings, blobs, cluster
):
    _, expected = run_fit(database, settings, blobs, covariance_type="diag")
    on_dask = settings.model_copy(
        update={"in_memory_max_bytes": 0, "dask_scheduler": cluster.scheduler_address}
    )
    job, parameters = run_fit(database, on_dask, blobs, covariance_type="diag")
    assert job.status == JobStatus.succeeded and job.result["engine"] == "dask"
    assert job.progress["iteration"] == job.result["n_iter"]
    assert_same_parameters(parameters, expected)


def test_a_dask_fit_past_the_wall_clock_limit_fails_with_a_timeout(database, settings, cluster):
    data = np.random.default_rng(0).normal(size=(20_000, 4))
    limited = settings.model_copy(
        update={
            "in_memory_max_bytes": 0,
            "dask_scheduler": cluster.scheduler_address,
            "job_timeout_seconds": 0.5,
        }
    )
    job, _ = run_fit(database, limited, data, max_iter=10_000, tol=0.0)
    assert job.status == JobStatus.failed and job.error["type"] == "timeout"
