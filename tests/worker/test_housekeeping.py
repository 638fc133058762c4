"""The worker's chores: old model versions are forgotten, never the active one."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from service import versions
from service.db.tables import PUBLIC_TENANT, ModelVersionRow
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
