"""Model versions over HTTP, on SQLite and PostgreSQL: history, rollback, staging, deletes."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from service.db.tables import ModelVersionRow

from ..conftest import wait_for_job
from .helpers import assert_problem, create_model, fitted_model, three_blobs

PROBE = [[0.0, 0.0], [3.0, 3.0], [6.0, 0.0]]


def _fit(client, model_id: str, data: np.ndarray, **body) -> dict:
    response = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist(), **body})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def _score(client, model_id: str, version: int | None = None) -> list[float]:
    params = {} if version is None else {"version": version}
    response = client.post(f"/v1/models/{model_id}/score", json={"data": PROBE}, params=params)
    assert response.status_code == 200, response.text
    return response.json()["log_likelihood"]


def _two_versions(client, *, activate_second: bool = True) -> str:
    """A model fitted twice, on different data: version 1, then version 2."""
    model_id = fitted_model(client)
    _fit(client, model_id, three_blobs(seed=1) * 2.0, activate=activate_second)
    return model_id


def test_a_fit_makes_version_one_active_with_its_provenance(client):
    dataset = client.post("/v1/datasets", json={"data": three_blobs().tolist()}).json()
    model_id = create_model(client)
    response = client.post(f"/v1/models/{model_id}/fit", json={"dataset_id": dataset["id"]})
    job = wait_for_job(client, response.json()["id"])
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["version"], model["active_version"]) == (1, 1)
    (version,) = client.get(f"/v1/models/{model_id}/versions").json()["items"]
    assert version["version"] == 1 and version["active"] and version["source"] == "fit"
    assert version["job_id"] == job["id"] and version["dataset_id"] == dataset["id"]
    assert version["dataset_sha256"] == dataset["sha256"]
    assert version["fit_summary"] == job["result"]
    assert version["config"]["n_components"] == 3 and "name" not in version["config"]
    assert version["anomaly_threshold"] == model["anomaly_threshold"]


def test_versions_are_listed_newest_first_page_by_page(client):
    model_id = _two_versions(client)
    _fit(client, model_id, three_blobs(seed=2))
    first = client.get(f"/v1/models/{model_id}/versions", params={"limit": 2}).json()
    assert [v["version"] for v in first["items"]] == [3, 2]
    second = client.get(
        f"/v1/models/{model_id}/versions", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [v["version"] for v in second["items"]] == [1] and second["next_cursor"] is None


def test_a_refit_serves_the_new_version_and_keeps_the_old_one_addressable(client):
    model_id = fitted_model(client)
    before = _score(client, model_id)
    _fit(client, model_id, three_blobs(seed=1) * 2.0)
    assert _score(client, model_id) != before
    assert _score(client, model_id, version=1) == before
    assert client.get(f"/v1/models/{model_id}").json()["active_version"] == 2


def test_rollback_serves_the_old_version_from_the_next_request(client):
    model_id = _two_versions(client)
    first, second = _score(client, model_id, 1), _score(client, model_id, 2)
    assert _score(client, model_id) == second  # cached as the active version
    response = client.post(f"/v1/models/{model_id}/activate", json={"version": 1})
    assert response.status_code == 200 and response.json()["active_version"] == 1
    assert _score(client, model_id) == first
    assert _score(client, model_id, version=2) == second


def test_activation_copies_the_versions_summary_onto_the_model(client):
    model_id = _two_versions(client)
    v1 = client.get(f"/v1/models/{model_id}/versions/1").json()
    model = client.post(f"/v1/models/{model_id}/activate", json={"version": 1}).json()
    assert model["fit_summary"] == v1["fit_summary"]
    assert model["anomaly_threshold"] == v1["anomaly_threshold"]
    assert model["version"] == 2  # still the newest


def test_a_staged_fit_does_not_serve_until_activated(client):
    model_id = _two_versions(client, activate_second=False)
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["version"], model["active_version"], model["status"]) == (2, 1, "ready")
    assert _score(client, model_id) == _score(client, model_id, version=1)
    assert _score(client, model_id) != _score(client, model_id, version=2)
    client.post(f"/v1/models/{model_id}/activate", json={"version": 2})
    assert _score(client, model_id) == _score(client, model_id, version=2)


def test_a_staged_first_fit_leaves_the_model_without_an_active_version(client):
    model_id = create_model(client)
    _fit(client, model_id, three_blobs(), activate=False)
    problem = assert_problem(client.post(f"/v1/models/{model_id}/score", json={"data": PROBE}), 409)
    assert "activate" in problem["detail"]
    assert len(_score(client, model_id, version=1)) == len(PROBE)


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("get", "/parameters", None),
        ("post", "/predict", {"data": PROBE}),
        ("post", "/score", {"data": PROBE}),
        ("post", "/anomalies", {"data": PROBE}),
        ("post", "/sample", {"n_samples": 2}),
    ],
)
def test_an_unknown_version_is_404_on_every_inference_route(client, method, suffix, body):
    model_id = fitted_model(client)
    kwargs = {"params": {"version": 7}} | ({} if body is None else {"json": body})
    assert_problem(getattr(client, method)(f"/v1/models/{model_id}{suffix}", **kwargs), 404)


def test_parameters_name_the_version_they_come_from(client):
    model_id = _two_versions(client)
    assert client.get(f"/v1/models/{model_id}/parameters").json()["version"] == 2
    old = client.get(f"/v1/models/{model_id}/parameters", params={"version": 1}).json()
    assert old["version"] == 1


def test_deleting_a_staged_version_forgets_it(client):
    model_id = _two_versions(client, activate_second=False)
    assert client.delete(f"/v1/models/{model_id}/versions/2").status_code == 204
    assert_problem(client.get(f"/v1/models/{model_id}/versions/2"), 404)
    assert_problem(
        client.post(f"/v1/models/{model_id}/score", json={"data": PROBE}, params={"version": 2}),
        404,
    )
    assert [
        v["version"] for v in client.get(f"/v1/models/{model_id}/versions").json()["items"]
    ] == [1]


def test_the_active_version_cannot_be_deleted(client):
    model_id = _two_versions(client)
    problem = assert_problem(client.delete(f"/v1/models/{model_id}/versions/2"), 409)
    assert "activate another" in problem["detail"]
    assert client.get(f"/v1/models/{model_id}/versions/2").status_code == 200


def test_version_numbers_are_never_reused(client):
    model_id = _two_versions(client, activate_second=False)
    client.delete(f"/v1/models/{model_id}/versions/2")
    _fit(client, model_id, three_blobs(seed=3))
    assert client.get(f"/v1/models/{model_id}").json()["active_version"] == 3


@pytest.mark.parametrize(
    "request_args",
    [
        ("get", "/versions/9", {}),
        ("delete", "/versions/9", {}),
    ],
)
def test_an_unknown_version_in_the_path_is_404(client, request_args):
    method, suffix, kwargs = request_args
    model_id = fitted_model(client)
    assert_problem(getattr(client, method)(f"/v1/models/{model_id}{suffix}", **kwargs), 404)


@pytest.mark.parametrize("version", [0, 9])
def test_activate_names_a_bad_or_unknown_version_in_its_body(client, version):
    # the path's model exists: a body naming a version it lacks is bad input (422)
    model_id = fitted_model(client)
    problem = assert_problem(
        client.post(f"/v1/models/{model_id}/activate", json={"version": version}), 422
    )
    assert "#/version" in [e["pointer"] for e in problem["errors"]]


def test_a_failed_fit_creates_no_version(client):
    model_id = fitted_model(client, reg_covar=0.0)
    collapsing = np.repeat([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], 20, axis=0)
    response = client.post(f"/v1/models/{model_id}/fit", json={"data": collapsing.tolist()})
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed", job
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["version"], model["active_version"], model["status"]) == (1, 1, "ready")
    assert len(client.get(f"/v1/models/{model_id}/versions").json()["items"]) == 1


def test_deleting_a_model_deletes_its_versions(client, database):
    model_id = _two_versions(client)
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    with database.session() as session:
        left = session.scalar(select(func.count()).where(ModelVersionRow.model_id == model_id))
    assert left == 0
    assert_problem(client.get(f"/v1/models/{model_id}/versions"), 404)


def test_warm_start_continues_from_the_active_version(client):
    model_id = _two_versions(client)
    client.post(f"/v1/models/{model_id}/activate", json={"version": 1})
    job = _fit(client, model_id, three_blobs(), warm_start=True)
    v1 = client.get(f"/v1/models/{model_id}/versions/1").json()["fit_summary"]
    # from version 1's optimum, on version 1's data, EM starts where version 1 ended
    # (version 2, fitted on data twice as spread, would start far below it)
    first = job["lower_bound_history"][0]
    assert first >= v1["lower_bound"] and first == pytest.approx(v1["lower_bound"], rel=1e-4)


def test_an_unknown_models_versions_are_404(client):
    assert_problem(client.get("/v1/models/mdl_nope/versions"), 404)
    assert_problem(client.post("/v1/models/mdl_nope/activate", json={"version": 1}), 404)


def test_a_model_with_contamination_zero_fits_and_flags_no_training_point(client):
    model_id = fitted_model(client, contamination=0.0)
    answer = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": three_blobs().tolist()}
    ).json()
    assert not any(answer["is_anomaly"])
