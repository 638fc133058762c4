"""Alembic: the same migrations on SQLite and PostgreSQL, up and down."""

import hashlib
import json
from datetime import UTC, datetime

import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from service.api import create_app
from service.blobstore import BlobStore
from service.datasets import stored_matrix
from service.db import Database
from service.db.migrate import current_revision, downgrade, head_revision, upgrade
from service.db.tables import Base, DatasetRow
from service.gmm import FitConfig, MixtureParameters, fit_mixture
from service.matrices import array_from_blob, array_to_blob


def test_migrations_build_exactly_the_tables_the_code_declares(database):
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_upgrade_from_empty_to_head_and_downgrade_back(database_url):
    database = Database(database_url)
    downgrade(database.engine, "base")
    assert current_revision(database.engine) is None
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    upgrade(database.engine)
    assert current_revision(database.engine) == head_revision(database.engine)
    assert {"datasets", "models", "jobs"} <= set(inspect(database.engine).get_table_names())
    database.dispose()


PROGRESS = {"init": 0, "n_init": 1, "iteration": 3, "max_iter": 100, "lower_bound": -2.8}


def _fitted_under_revision_0004(database: Database) -> tuple[str, MixtureParameters]:
    """A fitted model as the schema before versions stored it: parameters on the model row."""
    data = np.random.default_rng(0).normal(size=(300, 2))
    parameters = fit_mixture(data, FitConfig(n_components=2, random_state=0)).parameters
    now = datetime.now(UTC)
    summary = {
        "converged": True,
        "n_iter": 3,
        "lower_bound": -2.8,
        "bic": 1.0,
        "aic": 1.0,
        "n_samples": 300,
        "dataset_id": "ds_old",
    }
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO datasets (id, tenant, name, n_samples, n_features, sha256, "
                "size_bytes, data, created_at) VALUES ('ds_old', 'public', NULL, 300, 2, "
                "'abc123', 4800, :blob, :now)"
            ),
            {"blob": array_to_blob(data), "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO models (id, tenant, name, n_components, covariance_type, tol, "
                "reg_covar, max_iter, n_init, init_params, random_state, dtype, contamination, "
                "status, version, n_features, fit_summary, anomaly_threshold, parameters, "
                "created_at, updated_at) VALUES ('mdl_old', 'public', 'old', 2, 'full', 0.001, "
                "1e-06, 100, 1, 'kmeans', 0, 'float64', 0.01, 'ready', 3, 2, :summary, 5.5, "
                ":parameters, :now, :now)"
            ),
            {"summary": json.dumps(summary), "parameters": parameters.to_bytes(), "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, tenant, model_id, dataset_id, kind, status, progress, "
                "attempts, warm_start, cancel_requested, created_at, finished_at, "
                "lower_bound_history) VALUES ('job_old', 'public', 'mdl_old', 'ds_old', 'fit', "
                "'succeeded', :progress, 1, false, false, :now, :now, '[]')"
            ),
            {"now": now, "progress": json.dumps(PROGRESS)},
        )
    return "mdl_old", parameters


def test_upgrade_moves_each_fitted_models_parameters_into_an_active_version(database_url, settings):
    database = Database.from_settings(settings)  # its dataset goes to the test's blob store
    downgrade(database.engine, "0004", blob_store=database.blob_store)
    model_id, parameters = _fitted_under_revision_0004(database)
    upgrade(database.engine, blob_store=database.blob_store)
    probe = np.array([[0.0, 0.0], [1.0, -1.0]])
    with TestClient(create_app(settings, database=database, embedded_worker=False)) as client:
        model = client.get(f"/v1/models/{model_id}").json()
        assert (model["version"], model["active_version"], model["anomaly_threshold"]) == (
            3,
            3,
            5.5,
        )
        (version,) = client.get(f"/v1/models/{model_id}/versions").json()["items"]
        assert (version["version"], version["source"], version["job_id"]) == (3, "fit", "job_old")
        assert (version["dataset_id"], version["dataset_sha256"]) == ("ds_old", "abc123")
        assert version["config"]["n_components"] == 2
        assert client.get("/v1/jobs/job_old").json()["status"] == "succeeded"  # not cascaded away
        scored = client.post(f"/v1/models/{model_id}/score", json={"data": probe.tolist()}).json()
    np.testing.assert_array_equal(scored["log_likelihood"], parameters.score_samples(probe))
    database.dispose()


def test_downgrade_puts_the_active_versions_parameters_back_on_the_model(database_url, tmp_path):
    database = Database(database_url, blob_store=BlobStore(str(tmp_path / "datasets")))
    downgrade(database.engine, "0004", blob_store=database.blob_store)
    model_id, parameters = _fitted_under_revision_0004(database)
    upgrade(database.engine, blob_store=database.blob_store)
    downgrade(database.engine, "0004", blob_store=database.blob_store)
    with database.engine.connect() as connection:
        blob = connection.execute(
            text("SELECT parameters FROM models WHERE id = :id"), {"id": model_id}
        ).scalar_one()
    assert MixtureParameters.from_bytes(blob).means.tolist() == parameters.means.tolist()
    upgrade(database.engine, blob_store=database.blob_store)
    database.dispose()


def _dataset_under_revision_0005(database: Database) -> np.ndarray:
    """A dataset as the schema before the blob store kept it: one .npy blob in its row."""
    data = np.random.default_rng(1).normal(size=(1000, 3))
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO datasets (id, tenant, name, n_samples, n_features, sha256, "
                "size_bytes, data, created_at) VALUES ('ds_blob', 'public', 'old', 1000, 3, "
                ":sha, 24000, :blob, :now)"
            ),
            {
                "blob": array_to_blob(data),
                "sha": hashlib.sha256(data.tobytes()).hexdigest(),
                "now": datetime.now(UTC),
            },
        )
    return data


def test_upgrade_moves_each_datasets_blob_into_the_blob_store_without_loss(database_url, tmp_path):
    store = BlobStore(str(tmp_path / "moved"), chunk_bytes=8000)  # 333 rows a chunk
    database = Database(database_url, blob_store=store)
    downgrade(database.engine, "0005", blob_store=store)
    data = _dataset_under_revision_0005(database)
    upgrade(database.engine, blob_store=store)
    with database.session() as session:
        row = session.get(DatasetRow, "ds_blob")
        assert (row.status, row.chunks) == ("ready", [333, 333, 333, 1])
        assert row.sha256 == hashlib.sha256(data.tobytes()).hexdigest()
        np.testing.assert_array_equal(
            stored_matrix(session=session, dataset_id="ds_blob").read_all(), data
        )
    assert "data" not in {c["name"] for c in inspect(database.engine).get_columns("datasets")}
    database.dispose()


def test_downgrade_brings_each_datasets_blob_back_into_its_row(database_url, tmp_path):
    store = BlobStore(str(tmp_path / "moved"), chunk_bytes=8000)
    database = Database(database_url, blob_store=store)
    downgrade(database.engine, "0005", blob_store=store)
    data = _dataset_under_revision_0005(database)
    upgrade(database.engine, blob_store=store)
    downgrade(database.engine, "0005", blob_store=store)
    with database.engine.connect() as connection:
        blob = connection.execute(
            text("SELECT data FROM datasets WHERE id = 'ds_blob'")
        ).scalar_one()
    np.testing.assert_array_equal(array_from_blob(blob), data)
    upgrade(database.engine, blob_store=store)
    database.dispose()
