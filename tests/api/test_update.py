"""Incremental updates over HTTP, on SQLite and PostgreSQL: new versions by stepwise EM."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from service import versions
from service.gmm import MixtureParameters
from service.gmm.stepwise import update_mixture
from service.worker import Worker

from ..conftest import wait_for_job
from .helpers import assert_problem, create_model, fitted_model, three_blobs

NEW_ROWS = three_blobs(100, seed=7) + np.array([0.5, -0.5])  # 300 rows, drifted
REG_COVAR = 1e-6


def _update(client, model_id: str, **body) -> dict:
    """Queue an update (of NEW_ROWS unless the body names its rows) and wait for it."""
    if "dataset_id" not in body and "data" not in body:
        body["data"] = NEW_ROWS.tolist()
    response = client.post(f"/v1/models/{model_id}/update", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _parameters(database, model_id: str, version: int) -> MixtureParameters:
    with database.session() as session:
        parameters = versions.load_parameters(session=session, model_id=model_id, version=version)
    assert parameters is not None
    return parameters


def _assert_same(a: MixtureParameters, b: MixtureParameters) -> None:
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)


def _version(client, model_id: str, version: int) -> dict:
    response = client.get(f"/v1/models/{model_id}/versions/{version}")
    assert response.status_code == 200, response.text
    return response.json()


# --- what an update makes -------------------------------------------------------------


def test_an_update_makes_a_new_active_version_with_source_update(client):
    model_id = fitted_model(client)
    job = _update(client, model_id)
    assert job["kind"] == "update"
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["version"], model["active_version"], model["status"]) == (2, 2, "ready")
    version = _version(client, model_id, 2)
    assert version["source"] == "update" and version["active"]
    assert version["job_id"] == job["id"]


def test_the_version_summary_says_where_the_update_started_and_how_much_it_forgot(client):
    model_id = fitted_model(client)
    job = _update(client, model_id, learning_rate=0.25)
    summary = _version(client, model_id, 2)["fit_summary"]
    assert summary["update"] == {"from_version": 1, "learning_rate": 0.25, "n_effective": 1200.0}
    assert summary["n_samples"] == 300 and summary["n_iter"] == 1
    assert job["result"] == summary
    assert client.get(f"/v1/models/{model_id}").json()["fit_summary"] == summary


def test_an_update_job_is_one_iteration_from_queued_to_done(client):
    model_id = fitted_model(client)
    queued = client.post(f"/v1/models/{model_id}/update", json={"data": NEW_ROWS.tolist()})
    assert queued.json()["progress"]["max_iter"] == 1
    job = wait_for_job(client, queued.json()["id"])
    assert (job["progress"]["iteration"], job["progress"]["max_iter"]) == (1, 1)
    assert job["lower_bound_history"] == [job["result"]["lower_bound"]]


def test_the_default_rate_pools_the_fitted_rows_and_the_new_ones(client):
    model_id = fitted_model(client)  # 600 rows
    update = _update(client, model_id)["result"]["update"]
    assert update["learning_rate"] == pytest.approx(300 / 900)
    assert update["n_effective"] == pytest.approx(900)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_the_pooled_update_equals_the_stepwise_numerics(client, database, covariance_type):
    model_id = fitted_model(client, covariance_type=covariance_type)
    _update(client, model_id)
    expected = update_mixture(
        _parameters(database, model_id, 1), NEW_ROWS, n_effective=600, reg_covar=REG_COVAR
    )
    _assert_same(_parameters(database, model_id, 2), expected.parameters)


def test_an_update_with_a_learning_rate_equals_the_stepwise_numerics(client, database):
    model_id = fitted_model(client)
    _update(client, model_id, learning_rate=0.6)
    expected = update_mixture(
        _parameters(database, model_id, 1),
        NEW_ROWS,
        n_effective=600,
        learning_rate=0.6,
        reg_covar=REG_COVAR,
    )
    _assert_same(_parameters(database, model_id, 2), expected.parameters)


def test_a_second_update_starts_from_the_first_ones_n_effective(client):
    model_id = fitted_model(client)
    _update(client, model_id)
    second = _update(client, model_id)["result"]["update"]
    assert second["from_version"] == 2
    assert second["n_effective"] == pytest.approx(1200)
    assert second["learning_rate"] == pytest.approx(300 / 1200)


def test_an_update_from_a_stored_dataset_records_it(client, database):
    dataset = client.post("/v1/datasets", json={"data": NEW_ROWS.tolist()}).json()
    model_id = fitted_model(client)
    _update(client, model_id, dataset_id=dataset["id"])
    version = _version(client, model_id, 2)
    assert version["dataset_id"] == dataset["id"]
    assert version["dataset_sha256"] == dataset["sha256"]
    assert version["fit_summary"]["dataset_id"] == dataset["id"]


def test_the_anomaly_threshold_comes_from_the_updated_mixtures_own_draws(client, database):
    model_id = fitted_model(client, contamination=0.05)
    _update(client, model_id)
    own = versions.own_scores(_parameters(database, model_id, 2))
    threshold = _version(client, model_id, 2)["anomaly_threshold"]
    assert threshold == pytest.approx(own.stored_threshold(0.05), rel=1e-12)
    assert threshold != _version(client, model_id, 1)["anomaly_threshold"]


def test_the_updated_version_serves_predictions(client):
    model_id = fitted_model(client)
    _update(client, model_id, learning_rate=0.5)
    response = client.post(f"/v1/models/{model_id}/predict", json={"data": [[6.0, 0.0]]})
    assert response.status_code == 200 and len(response.json()["labels"]) == 1


# --- versions: staging and rollback ------------------------------------------------------


def test_activate_false_stages_the_update_and_keeps_serving_the_old_version(client):
    model_id = fitted_model(client)
    _update(client, model_id, activate=False)
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["version"], model["active_version"]) == (2, 1)
    assert not _version(client, model_id, 2)["active"]


def test_an_update_can_be_rolled_back(client):
    model_id = fitted_model(client)
    before = client.post(f"/v1/models/{model_id}/score", json={"data": [[1.0, 1.0]]}).json()
    _update(client, model_id, learning_rate=1.0)
    response = client.post(f"/v1/models/{model_id}/activate", json={"version": 1})
    assert response.status_code == 200, response.text
    after = client.post(f"/v1/models/{model_id}/score", json={"data": [[1.0, 1.0]]}).json()
    assert after["log_likelihood"] == before["log_likelihood"]
    assert client.get(f"/v1/models/{model_id}").json()["active_version"] == 1


def test_an_update_starts_from_the_active_version_not_the_newest(client):
    model_id = fitted_model(client)
    client_fit = client.post(
        f"/v1/models/{model_id}/fit",
        json={"data": (three_blobs(seed=3) * 3.0).tolist(), "activate": False},
    )
    assert wait_for_job(client, client_fit.json()["id"])["status"] == "succeeded"
    assert _update(client, model_id)["result"]["update"]["from_version"] == 1


def test_an_imported_version_updates_with_a_learning_rate(client):
    gmm = GaussianMixture(3, random_state=0).fit(three_blobs())
    model_id = create_model(client)
    body = {
        "covariance_type": "full",
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "covariances": gmm.covariances_.tolist(),
    }
    assert client.post(f"/v1/models/{model_id}/parameters", json=body).status_code == 201
    update = _update(client, model_id, learning_rate=0.1)["result"]["update"]
    assert update == {"from_version": 1, "learning_rate": 0.1, "n_effective": 3000.0}


def test_an_update_whose_version_was_deleted_before_it_ran_fails(idle_client, settings, database):
    model_id = create_model(idle_client)
    worker = Worker(database, settings)
    for seed in (0, 1):
        fit = idle_client.post(
            f"/v1/models/{model_id}/fit", json={"data": three_blobs(seed=seed).tolist()}
        )
        assert fit.status_code == 202
        assert worker.run_once()
    queued = idle_client.post(f"/v1/models/{model_id}/update", json={"data": NEW_ROWS.tolist()})
    assert queued.status_code == 202
    assert (
        idle_client.post(f"/v1/models/{model_id}/activate", json={"version": 1}).status_code == 200
    )
    assert idle_client.delete(f"/v1/models/{model_id}/versions/2").status_code == 204
    assert worker.run_once()
    job = idle_client.get(f"/v1/jobs/{queued.json()['id']}").json()
    assert job["status"] == "failed"
    assert job["error"]["type"] == "invalid_input" and "version 2" in job["error"]["detail"]
    assert idle_client.get(f"/v1/models/{model_id}").json()["status"] == "ready"


# --- refusals ------------------------------------------------------------------------------


def test_updating_an_unfitted_model_is_409(idle_client):
    model_id = create_model(idle_client)
    response = idle_client.post(f"/v1/models/{model_id}/update", json={"data": NEW_ROWS.tolist()})
    assert "fit it first" in assert_problem(response, 409)["detail"]


def test_updating_an_unknown_model_is_404(idle_client):
    response = idle_client.post("/v1/models/mdl_nope/update", json={"data": [[1.0, 2.0]]})
    assert_problem(response, 404)


def test_updating_from_an_unknown_dataset_is_404(client):
    model_id = fitted_model(client)
    response = client.post(f"/v1/models/{model_id}/update", json={"dataset_id": "ds_nope"})
    assert_problem(response, 404)


def test_rows_of_another_width_are_422_naming_data(client):
    model_id = fitted_model(client)
    response = client.post(f"/v1/models/{model_id}/update", json={"data": [[1.0, 2.0, 3.0]]})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/data"
    assert "3 features" in problem["errors"][0]["detail"]


def test_a_dataset_of_another_width_is_422_naming_dataset_id(client):
    dataset = client.post("/v1/datasets", json={"data": [[1.0], [2.0]]}).json()
    model_id = fitted_model(client)
    response = client.post(f"/v1/models/{model_id}/update", json={"dataset_id": dataset["id"]})
    assert assert_problem(response, 422)["errors"][0]["pointer"] == "#/dataset_id"


@pytest.mark.parametrize("rate", [0, -0.5, 1.5, "0.5", True])
def test_a_learning_rate_outside_zero_one_is_422(client, rate):
    model_id = fitted_model(client)
    body = {"data": NEW_ROWS.tolist(), "learning_rate": rate}
    problem = assert_problem(client.post(f"/v1/models/{model_id}/update", json=body), 422)
    assert "#/learning_rate" in [e["pointer"] for e in problem["errors"]], problem
    assert client.get(f"/v1/models/{model_id}").json()["version"] == 1


def test_an_infinite_learning_rate_is_422(client):
    model_id = fitted_model(client)
    response = client.post(
        f"/v1/models/{model_id}/update",
        content=b'{"data": [[1.0, 2.0]], "learning_rate": 1e999}',
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert "#/learning_rate" in [e["pointer"] for e in problem["errors"]], problem


def test_an_imported_version_without_a_learning_rate_is_422(client):
    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(three_blobs())
    model_id = create_model(client, covariance_type="diag")
    body = {
        "covariance_type": "diag",
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        "covariances": gmm.covariances_.tolist(),
    }
    assert client.post(f"/v1/models/{model_id}/parameters", json=body).status_code == 201
    response = client.post(f"/v1/models/{model_id}/update", json={"data": NEW_ROWS.tolist()})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/learning_rate"
    assert "imported" in problem["errors"][0]["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"data": [[1.0, 2.0]], "dataset_id": "ds_x"},
        {"data": [[1.0, 2.0], [3.0]]},
        {"data": [[1.0, "2"]]},
        {"data": [[1.0, 2.0]], "sample_weight": [1.0]},
    ],
    ids=["neither", "both", "ragged", "text", "unknown-field"],
)
def test_malformed_update_bodies_are_422(client, body):
    model_id = fitted_model(client)
    assert_problem(client.post(f"/v1/models/{model_id}/update", json=body), 422)
    assert client.get(f"/v1/models/{model_id}").json()["version"] == 1


def test_an_update_while_a_fit_is_queued_is_409(idle_client, settings, database):
    model_id = create_model(idle_client)
    idle_client.post(f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist()})
    assert Worker(database, settings).run_once()
    idle_client.post(f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist()})
    response = idle_client.post(f"/v1/models/{model_id}/update", json={"data": NEW_ROWS.tolist()})
    assert_problem(response, 409)


# --- Idempotency-Key -------------------------------------------------------------------------


def test_a_retried_update_with_the_same_key_queues_one_job(client):
    model_id = fitted_model(client)
    headers = {"Idempotency-Key": "update-once"}
    body = {"data": NEW_ROWS.tolist(), "learning_rate": 0.5}
    first = client.post(f"/v1/models/{model_id}/update", json=body, headers=headers)
    again = client.post(f"/v1/models/{model_id}/update", json=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    wait_for_job(client, first.json()["id"])
    jobs = client.get(f"/v1/jobs?model_id={model_id}").json()["items"]
    assert [job["kind"] for job in jobs].count("update") == 1


def test_the_same_key_with_another_update_body_is_422(client):
    model_id = fitted_model(client)
    headers = {"Idempotency-Key": "update-clash"}
    body = {"data": NEW_ROWS.tolist(), "learning_rate": 0.5}
    first = client.post(f"/v1/models/{model_id}/update", json=body, headers=headers)
    wait_for_job(client, first.json()["id"])
    other = {**body, "learning_rate": 0.9}
    response = client.post(f"/v1/models/{model_id}/update", json=other, headers=headers)
    assert assert_problem(response, 422)["errors"][0]["pointer"] == "#/Idempotency-Key"
