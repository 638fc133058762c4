"""POST /v1/models/{id}/select over HTTP, on SQLite and PostgreSQL: one job chooses K and the
covariance type, the winner becomes a version."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from ..conftest import wait_for_job
from .helpers import assert_problem, create_model, fitted_model, three_blobs


def _select(client, model_id: str, **body) -> dict:
    body = {"data": three_blobs().tolist(), "n_components": {"min": 1, "max": 4}, **body}
    response = client.post(f"/v1/models/{model_id}/select", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    return wait_for_job(client, response.json()["id"])


def test_selection_finds_three_blobs_and_serves_the_winner(client):
    model_id = create_model(client, n_components=1)
    job = _select(client, model_id, covariance_types=["full", "spherical"])
    assert (job["kind"], job["status"]) == ("select", "succeeded"), job
    result = job["result"]
    assert result["criterion"] == "bic"
    assert result["best"] == {"n_components": 3, "covariance_type": "spherical"} or result[
        "best"
    ] == {"n_components": 3, "covariance_type": "full"}
    assert len(result["candidates"]) == 8
    best = min(
        (c for c in result["candidates"] if not c["spurious"] and c["error"] is None),
        key=lambda c: c["bic"],
    )
    assert (best["n_components"], best["covariance_type"]) == tuple(result["best"].values())
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["n_components"], model["active_version"]) == (3, 1)
    assert model["covariance_type"] == result["best"]["covariance_type"]
    (version,) = client.get(f"/v1/models/{model_id}/versions").json()["items"]
    assert version["source"] == "select" and version["job_id"] == job["id"]


def test_candidate_criteria_are_scikit_learns(client):
    X = three_blobs()
    model_id = create_model(client, n_components=1)
    job = _select(client, model_id, n_components=[2], covariance_types=["diag"])
    (candidate,) = job["result"]["candidates"]
    parameters = client.get(f"/v1/models/{model_id}/parameters").json()
    reference = GaussianMixture(2, covariance_type="diag")
    reference.weights_ = np.asarray(parameters["weights"])
    reference.means_ = np.asarray(parameters["means"])
    reference.covariances_ = np.asarray(parameters["covariances"])
    reference.precisions_cholesky_ = 1.0 / np.sqrt(reference.covariances_)
    assert candidate["bic"] == pytest.approx(reference.bic(X), rel=1e-9)
    assert candidate["aic"] == pytest.approx(reference.aic(X), rel=1e-9)
    assert candidate["log_likelihood"] == pytest.approx(reference.score(X) * len(X), rel=1e-9)
    assert candidate["icl"] >= candidate["bic"]  # the entropy term is never negative


def test_the_job_progress_names_the_candidate(client):
    model_id = create_model(client, n_components=1)
    job = _select(client, model_id, n_components=[2, 3], covariance_types=["tied"])
    candidate = job["progress"]["candidate"]
    assert candidate["total"] == 2 and candidate["covariance_type"] == "tied"
    assert job["lower_bound_history"]  # the winner's


def test_a_staged_selection_leaves_the_model_serving_what_it_did(client):
    model_id = fitted_model(client, n_components=2)
    job = _select(client, model_id, n_components=[3], covariance_types=["full"], activate=False)
    assert job["status"] == "succeeded"
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["active_version"], model["n_components"]) == (1, 2)
    client.post(f"/v1/models/{model_id}/activate", json={"version": 2})
    assert client.get(f"/v1/models/{model_id}").json()["n_components"] == 3


def test_a_second_job_while_a_selection_runs_is_409(idle_client):
    model_id = create_model(idle_client, n_components=1)
    body = {"data": three_blobs().tolist(), "n_components": [1, 2]}
    assert idle_client.post(f"/v1/models/{model_id}/select", json=body).status_code == 202
    assert_problem(idle_client.post(f"/v1/models/{model_id}/select", json=body), 409)
    fit = {"data": three_blobs().tolist()}
    assert_problem(idle_client.post(f"/v1/models/{model_id}/fit", json=fit), 409)


def test_a_queued_selection_can_be_cancelled(idle_client):
    model_id = create_model(idle_client, n_components=1)
    body = {"data": three_blobs().tolist(), "n_components": [1, 2]}
    job = idle_client.post(f"/v1/models/{model_id}/select", json=body).json()
    cancelled = idle_client.post(f"/v1/jobs/{job['id']}/cancel").json()
    assert (cancelled["kind"], cancelled["status"]) == ("select", "cancelled")


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({"n_components": []}, "#/n_components"),
        ({"n_components": [0]}, "#/n_components"),
        ({"n_components": [601]}, "#/n_components"),  # more than the 600 rows
        ({"n_components": {"min": 3, "max": 2}}, "#/n_components"),
        ({"n_components": [2], "covariance_types": ["banana"]}, "#/covariance_types/0"),
        ({"n_components": [2], "covariance_types": []}, "#/covariance_types"),
        ({"n_components": [2], "criterion": "mdl"}, "#/criterion"),
        ({"n_components": {"min": 1, "max": 20}}, "#/n_components"),  # 80 > 64 candidates
        ({"n_components": [2], "n_init": 0}, "#/n_init"),
        ({"n_components": [2], "sample_weight": [1.0]}, "#/sample_weight"),
    ],
)
def test_a_bad_selection_is_422_naming_the_field(client, body, pointer):
    model_id = create_model(client, n_components=1)
    response = client.post(
        f"/v1/models/{model_id}/select", json={"data": three_blobs().tolist(), **body}
    )
    problem = assert_problem(response, 422)
    assert any(e["pointer"].startswith(pointer) for e in problem["errors"]), problem


def test_selection_needs_exactly_one_data_source(client):
    model_id = create_model(client, n_components=1)
    response = client.post(f"/v1/models/{model_id}/select", json={"n_components": [2]})
    assert_problem(response, 422)


def test_a_range_past_the_component_limit_is_422_before_it_is_built(client):
    model_id = create_model(client, n_components=1)
    body = {"data": three_blobs().tolist(), "n_components": {"min": 1, "max": 10**15}}
    problem = assert_problem(client.post(f"/v1/models/{model_id}/select", json=body), 422)
    assert problem["errors"][0]["pointer"].startswith("#/n_components")
