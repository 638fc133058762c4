"""The worker's chores: old model versions are forgotten, never the active one; dataset
chunks nothing stands for are removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from service import versions
from service.datasets import load_matrix, register_dataset
from service.db.tables import PUBLIC_TENANT, DatasetStatus, ModelVersionRow, new_id
from service.models import create_model
from service.worker import Worker

from .conftest import DEFAULT_CONFIG

ARRAYS = dict(
    covariance_type="spherical",
    weights=[0.5, 0.5],
    means=[[0.0, 0.0], [3.0, 3.0]],
    covariances=[1.0, 2.0],
)


def _model_with_versions(database, settings, count: int) -> str:
    with database.session() as session:
        model = create_model(
            session=session, tenant=PUBLIC_TENANT, config=DEFAULT_CONFIG, settings=settings
        )
        for _ in range(count):
            versions.import_parameters(
                session=session,
                tenant=PUBLIC_TENANT,
                model_id=model.id,
                arrays=ARRAYS,
                anomaly_threshold=1.0,
                activate=True,
            )
        return model.id


def _kept(database, model_id: str) -> list[int]:
    with database.session() as session:
        return list(
            session.scalars(
                select(ModelVersionRow.version)
                .where(ModelVersionRow.model_id == model_id)
                .order_by(ModelVersionRow.version)
            )
        )


def test_housekeeping_keeps_the_newest_versions_and_the_active_one(database, settings):
    model_id = _model_with_versions(database, settings, 5)
    with database.session() as session:
        versions.activate(session=session, tenant=PUBLIC_TENANT, model_id=model_id, version=1)
    Worker(database, settings.model_copy(update={"keep_versions": 2})).housekeeping()
    assert _kept(database, model_id) == [1, 4, 5]


def test_housekeeping_leaves_models_within_the_limit_alone(database, settings):
    model_id = _model_with_versions(database, settings, 3)
    Worker(database, settings.model_copy(update={"keep_versions": 3})).housekeeping()
    assert _kept(database, model_id) == [1, 2, 3]


def test_forgotten_versions_leave_the_served_one_answering(database, settings):
    model_id = _model_with_versions(database, settings, 4)
    Worker(database, settings.model_copy(update={"keep_versions": 1})).housekeeping()
    assert _kept(database, model_id) == [4]
    with database.session() as session:
        parameters = versions.load_parameters(session=session, model_id=model_id, version=4)
    assert np.isfinite(parameters.score_samples(np.zeros((1, 2)))).all()


def _stored_dataset(database, status: DatasetStatus | None) -> str:
    """Chunks in the store and, unless ``status`` is None, a dataset row with that status."""
    store = database.blob_store
    dataset_id = new_id("ds")
    written = store.write_matrix(dataset_id, np.zeros((10, 2)))
    if status is not None:
        with database.session() as session:
            row = register_dataset(
                session=session,
                dataset_id=dataset_id,
                tenant=PUBLIC_TENANT,
                name=None,
                written=written,
            )
            row.status = status
    return dataset_id


def _age(database, dataset_id: str, hours: float) -> None:
    """Make a folder store's chunks look ``hours`` old."""
    folder = Path(database.blob_store.root) / dataset_id
    then = time.time() - hours * 3600
    for chunk in folder.iterdir():
        os.utime(chunk, (then, then))


def test_housekeeping_removes_the_chunks_of_a_failed_dataset(database, settings):
    failed = _stored_dataset(database, DatasetStatus.failed)
    Worker(database, settings).housekeeping()
    assert not database.blob_store.exists(failed)


def test_housekeeping_removes_old_chunks_that_no_dataset_row_stands_for(database, settings):
    orphan = _stored_dataset(database, None)
    _age(database, orphan, hours=2)
    Worker(database, settings).housekeeping()
    assert not database.blob_store.exists(orphan)


def test_housekeeping_leaves_the_chunks_of_an_upload_still_arriving(database, settings):
    arriving = _stored_dataset(database, None)  # its row comes with its last chunk
    Worker(database, settings).housekeeping()
    assert database.blob_store.exists(arriving)


def test_housekeeping_leaves_ready_and_importing_datasets_whatever_their_age(database, settings):
    kept = [
        _stored_dataset(database, status)
        for status in (DatasetStatus.ready, DatasetStatus.importing)
    ]
    for dataset_id in kept:
        _age(database, dataset_id, hours=48)
    Worker(database, settings).housekeeping()
    assert all(database.blob_store.exists(dataset_id) for dataset_id in kept)
    with database.session() as session:
        assert load_matrix(session=session, dataset_id=kept[0]).shape == (10, 2)
