"""Fits of stored datasets: small ones in memory, big ones read chunk by chunk from the store."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import select

from service import versions
from service.blobstore import StoredMatrix
from service.datasets import create_dataset
from service.db import Database
from service.db.tables import PUBLIC_TENANT, JobRow, JobStatus, ModelVersionRow
from service.gmm import ScoreDistribution
from service.models import create_model, request_fit
from service.updates import request_update
from service.worker.runner import Worker

from ..gmm.conftest import make_blobs
from .conftest import DEFAULT_CONFIG

DATA = make_blobs(7, 3000, 3, 3, spread=6.0)  # 72 kB: chunks of 16 KiB


@pytest.fixture
def chunked_database(settings) -> Iterator[Database]:
    database = Database.from_settings(settings.model_copy(update={"chunk_bytes": 16 * 1024}))
    yield database
    database.dispose()


def _fit_stored(database: Database, settings, covariance_type: str = "full"):
    with database.session() as session:
        dataset = create_dataset(session=session, tenant=PUBLIC_TENANT, name=None, matrix=DATA)
        assert len(dataset.chunks) > 1
        config = {**DEFAULT_CONFIG, "n_components": 3, "covariance_type": covariance_type}
        model = create_model(
            session=session, tenant=PUBLIC_TENANT, config=config, settings=settings
        )
        job = request_fit(
            session=session,
            tenant=PUBLIC_TENANT,
            model_id=model.id,
            dataset_id=dataset.id,
            data=None,
            sample_weight=None,
            warm_start=False,
        )
        model_id, job_id = model.id, job.id
    assert Worker(database, settings).run_once()
    with database.session() as session:
        job = session.scalars(select(JobRow).where(JobRow.id == job_id)).one()
        version = session.get(ModelVersionRow, (model_id, 1))
        parameters = versions.load_parameters(session=session, model_id=model_id, version=1)
        return job, version, parameters, ScoreDistribution.from_bytes(version.training_scores)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_a_big_stored_dataset_is_fitted_chunk_by_chunk_with_the_in_memory_answer(
    chunked_database, settings, monkeypatch, covariance_type
):
    job, version, expected, expected_scores = _fit_stored(
        chunked_database, settings, covariance_type
    )
    assert job.result["engine"] == "in_memory"

    def never_whole(self):
        raise AssertionError("the big dataset was loaded whole")

    monkeypatch.setattr(StoredMatrix, "read_all", never_whole)
    big = settings.model_copy(update={"in_memory_max_bytes": DATA.nbytes - 1})
    job, chunked_version, parameters, scores = _fit_stored(chunked_database, big, covariance_type)
    assert job.status == JobStatus.succeeded, job.error
    assert job.result["engine"] == "out_of_core"
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(parameters, name), getattr(expected, name), rtol=1e-10, atol=1e-10
        )
    for name in ("bic", "aic", "lower_bound"):
        assert job.result[name] == pytest.approx(version.fit_summary[name], rel=1e-10)
    assert chunked_version.anomaly_threshold == pytest.approx(version.anomaly_threshold, rel=1e-9)
    np.testing.assert_allclose(scores.scores, expected_scores.scores, rtol=1e-9)
    assert (scores.n_training, scores.exact) == (expected_scores.n_training, True)


def test_chunked_scores_sample_the_rows_an_in_memory_sample_draws(chunked_database, settings):
    from service.gmm.chunked import score_chunked

    with chunked_database.session() as session:
        dataset = create_dataset(session=session, tenant=PUBLIC_TENANT, name=None, matrix=DATA)
        stored = chunked_database.blob_store.stored_matrix(dataset.id, dataset.chunks, 3)
    _, _, parameters, _ = _fit_stored(chunked_database, settings)
    weights = np.random.default_rng(3).integers(0, 3, size=len(DATA)).astype(float)
    _, _, scores = score_chunked(parameters, stored.chunked(), weights, max_exact=500)
    expected = ScoreDistribution.from_scores(
        -parameters.score_samples(DATA), weights, max_exact=500
    )
    np.testing.assert_allclose(scores.scores, expected.scores, rtol=1e-12)
    assert (scores.n_training, scores.exact) == (expected.n_training, False)
    assert scores.mean_score == pytest.approx(expected.mean_score, rel=1e-12)


def test_on_dask_the_workers_read_the_stored_chunks_themselves(chunked_database, settings):
    import distributed

    _, _, expected, _ = _fit_stored(chunked_database, settings, "diag")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as cluster:
        on_dask = settings.model_copy(
            update={"in_memory_max_bytes": 0, "dask_scheduler": cluster.scheduler_address}
        )
        job, _, parameters, _ = _fit_stored(chunked_database, on_dask, "diag")
    assert job.status == JobStatus.succeeded and job.result["engine"] == "dask", job.error
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(parameters, name), getattr(expected, name), rtol=1e-10, atol=1e-10
        )


def _update_stored(database: Database, settings, model_id: str, learning_rate: float | None):
    new_rows = make_blobs(8, 2000, 3, 3, spread=6.0) + 0.5
    with database.session() as session:
        dataset = create_dataset(session=session, tenant=PUBLIC_TENANT, name=None, matrix=new_rows)
        assert len(dataset.chunks) > 1
        job = request_update(
            session=session,
            tenant=PUBLIC_TENANT,
            model_id=model_id,
            dataset_id=dataset.id,
            data=None,
            learning_rate=learning_rate,
            activate=False,
        )
        job_id = job.id
    assert Worker(database, settings).run_once()
    with database.session() as session:
        job = session.scalars(select(JobRow).where(JobRow.id == job_id)).one()
        assert job.status == JobStatus.succeeded, job.error
        version = session.scalars(
            select(ModelVersionRow.version).where(ModelVersionRow.job_id == job_id)
        ).one()
        return job, versions.load_parameters(session=session, model_id=model_id, version=version)


@pytest.mark.parametrize("learning_rate", [None, 0.25])
def test_a_big_stored_dataset_updates_a_model_chunk_by_chunk_with_the_in_memory_answer(
    chunked_database, settings, monkeypatch, learning_rate
):
    job, _, _, _ = _fit_stored(chunked_database, settings)
    model_id = job.model_id
    in_memory_job, expected = _update_stored(chunked_database, settings, model_id, learning_rate)

    def never_whole(self):
        raise AssertionError("the big dataset was loaded whole")

    monkeypatch.setattr(StoredMatrix, "read_all", never_whole)
    big = settings.model_copy(update={"in_memory_max_bytes": 1})
    chunked_job, parameters = _update_stored(chunked_database, big, model_id, learning_rate)
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(
            getattr(parameters, name), getattr(expected, name), rtol=1e-10, atol=1e-10
        )
    assert chunked_job.result["update"] == pytest.approx(in_memory_job.result["update"])
    assert (in_memory_job.result["engine"], chunked_job.result["engine"]) == (
        "in_memory",
        "out_of_core",
    )
    for name in ("bic", "aic", "lower_bound"):
        assert chunked_job.result[name] == pytest.approx(in_memory_job.result[name], rel=1e-10)
