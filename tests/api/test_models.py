"""/v1/models over HTTP, on SQLite and PostgreSQL: the whole contract."""

import numpy as np
import pytest

from ..conftest import wait_for_job
from .helpers import TRUE_MEANS, assert_problem, create_model, fitted_model, three_blobs

SKLEARN_DEFAULTS = {
    "name": None,
    "n_components": 1,
    "covariance_type": "full",
    "tol": 1e-3,
    "reg_covar": 1e-6,
    "max_iter": 100,
    "n_init": 1,
    "init_params": "kmeans",
    "random_state": None,
    "dtype": "float64",
    "contamination": 0.01,
}


def test_a_new_model_has_scikit_learn_defaults_and_is_unfitted(client):
    response = client.post("/v1/models", json={})
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in SKLEARN_DEFAULTS} == SKLEARN_DEFAULTS
    assert (body["status"], body["version"], body["n_features"]) == ("new", 0, None)
    assert body["fit_summary"] is None and body["anomaly_threshold"] is None


@pytest.mark.parametrize(
    "config, pointer",
    [
        ({"n_components": 0}, "#/n_components"),
        ({"covariance_type": "banana"}, "#/covariance_type"),
        ({"tol": -1}, "#/tol"),
        ({"max_iter": 0}, "#/max_iter"),
        ({"init_params": "magic"}, "#/init_params"),
        ({"dtype": "float16"}, "#/dtype"),
        ({"contamination": 0.9}, "#/contamination"),
        ({"random_state": -1}, "#/random_state"),
        ({"n_components": 100000}, "#/n_components"),
        ({"n_componentz": 2}, "#/n_componentz"),
    ],
)
def test_invalid_configuration_is_422_naming_the_field(client, config, pointer):
    problem = assert_problem(client.post("/v1/models", json=config), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]]


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("get", "/parameters", None),
        ("post", "/predict", {"data": [[0.0, 0.0]]}),
        ("post", "/score", {"data": [[0.0, 0.0]]}),
        ("post", "/anomalies", {"data": [[0.0, 0.0]]}),
        ("post", "/sample", {"n_samples": 2}),
    ],
)
def test_asking_an_unfitted_model_is_409(idle_client, method, suffix, body):
    model_id = create_model(idle_client)
    response = idle_client.request(method, f"/v1/models/{model_id}{suffix}", json=body)
    assert_problem(response, 409)


@pytest.mark.parametrize(
    "method, suffix, body",
    [
        ("get", "", None),
        ("delete", "", None),
        ("get", "/parameters", None),
        ("post", "/fit", {"data": [[0.0]]}),
        ("post", "/predict", {"data": [[0.0]]}),
        ("post", "/sample", {"n_samples": 1}),
    ],
)
def test_unknown_model_is_404(idle_client, method, suffix, body):
    assert_problem(idle_client.request(method, f"/v1/models/mdl_nope{suffix}", json=body), 404)


def test_fit_predict_score_anomalies_sample_end_to_end(client):
    data = three_blobs()
    model_id = create_model(client)
    response = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["kind"] == "fit"

    job = wait_for_job(client, job["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1
    assert job["progress"]["iteration"] == job["result"]["n_iter"]

    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["status"], model["version"], model["n_features"]) == ("ready", 1, 2)
    assert model["fit_summary"] == job["result"]
    assert model["fit_summary"]["n_samples"] == len(data)
    assert model["fit_summary"]["dataset_id"] is None

    parameters = client.get(f"/v1/models/{model_id}/parameters").json()
    assert parameters["version"] == 1 and parameters["covariance_type"] == "full"
    means = np.array(parameters["means"])
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in TRUE_MEANS]
    np.testing.assert_allclose(means[order], TRUE_MEANS, atol=0.1)
    assert np.array(parameters["covariances"]).shape == (3, 2, 2)
    np.testing.assert_allclose(sum(parameters["weights"]), 1.0)

    predicted = client.post(
        f"/v1/models/{model_id}/predict",
        json={"data": TRUE_MEANS.tolist(), "return_probabilities": True},
    ).json()
    assert predicted["labels"] == order
    np.testing.assert_allclose(np.sum(predicted["probabilities"], axis=1), 1.0)
    assert (
        "probabilities"
        not in client.post(
            f"/v1/models/{model_id}/predict", json={"data": TRUE_MEANS.tolist()}
        ).json()
    )

    scored = client.post(
        f"/v1/models/{model_id}/score", json={"data": [[0.0, 0.0], [30.0, 30.0]]}
    ).json()
    assert scored["log_likelihood"][0] > scored["log_likelihood"][1]
    np.testing.assert_allclose(scored["mean_log_likelihood"], np.mean(scored["log_likelihood"]))

    flagged = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": [[0.0, 0.0], [30.0, 30.0]]}
    ).json()
    assert flagged["is_anomaly"] == [False, True]
    assert flagged["threshold"] == model["anomaly_threshold"]
    np.testing.assert_allclose(flagged["scores"], -np.array(scored["log_likelihood"]))

    sampled = client.post(
        f"/v1/models/{model_id}/sample", json={"n_samples": 50, "random_state": 4}
    ).json()
    assert np.array(sampled["samples"]).shape == (50, 2)
    assert set(sampled["components"]) <= {0, 1, 2}


def test_fit_from_a_stored_dataset_records_it(client):
    dataset_id = client.post("/v1/datasets", json={"data": three_blobs().tolist()}).json()["id"]
    model_id = create_model(client)
    job = client.post(f"/v1/models/{model_id}/fit", json={"dataset_id": dataset_id}).json()
    job = wait_for_job(client, job["id"])
    assert job["status"] == "succeeded" and job["dataset_id"] == dataset_id
    assert client.get(f"/v1/models/{model_id}").json()["fit_summary"]["dataset_id"] == dataset_id


def test_anomaly_threshold_is_the_contamination_quantile_of_training_scores(client):
    data = three_blobs()
    model_id = fitted_model(client, data, contamination=0.05)
    model = client.get(f"/v1/models/{model_id}").json()
    scores = client.post(f"/v1/models/{model_id}/anomalies", json={"data": data.tolist()}).json()
    share = np.mean(scores["is_anomaly"])
    assert abs(share - 0.05) <= 2 / len(data)
    np.testing.assert_allclose(model["anomaly_threshold"], np.quantile(scores["scores"], 0.95))


def test_a_request_threshold_overrides_the_stored_one(client):
    model_id = fitted_model(client)
    flagged = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": [[0.0, 0.0]], "threshold": -100.0}
    ).json()
    assert (flagged["is_anomaly"], flagged["threshold"]) == ([True], -100.0)


def test_sample_with_the_same_random_state_repeats_and_comes_shuffled(client):
    model_id = fitted_model(client)
    first = client.post(
        f"/v1/models/{model_id}/sample", json={"n_samples": 200, "random_state": 9}
    ).json()
    again = client.post(
        f"/v1/models/{model_id}/sample", json={"n_samples": 200, "random_state": 9}
    ).json()
    assert first == again
    assert first["components"] != sorted(first["components"])


def test_sample_over_the_limit_is_422(client):
    model_id = fitted_model(client)
    problem = assert_problem(
        client.post(f"/v1/models/{model_id}/sample", json={"n_samples": 10**9}), 422
    )
    assert problem["errors"][0]["pointer"] == "#/n_samples"


def test_data_of_another_width_is_422(client):
    model_id = fitted_model(client)
    for suffix in ("predict", "score", "anomalies"):
        problem = assert_problem(
            client.post(f"/v1/models/{model_id}/{suffix}", json={"data": [[1.0, 2.0, 3.0]]}), 422
        )
        assert problem["errors"][0]["pointer"] == "#/data/0"


@pytest.mark.parametrize(
    "body, pointer",
    [
        ({}, "#/"),
        ({"dataset_id": "ds_x", "data": [[1.0]]}, "#/"),
        ({"data": [[1.0, 2.0]], "sample_weight": [1.0, 2.0]}, "#/sample_weight"),
        ({"data": [[1.0], [2.0], [3.0]], "sample_weight": [1.0, -2.0, 1.0]}, "#/sample_weight/1"),
        ({"data": [[1.0], [2.0]]}, "#/data"),
    ],
)
def test_bad_fit_requests_are_422(idle_client, body, pointer):
    model_id = create_model(idle_client)
    problem = assert_problem(idle_client.post(f"/v1/models/{model_id}/fit", json=body), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem


def test_fit_of_an_unknown_dataset_is_404(idle_client):
    model_id = create_model(idle_client)
    assert_problem(
        idle_client.post(f"/v1/models/{model_id}/fit", json={"dataset_id": "ds_nope"}), 404
    )


def test_a_second_fit_while_one_is_queued_is_409(idle_client):
    model_id = create_model(idle_client)
    body = {"data": three_blobs().tolist()}
    assert idle_client.post(f"/v1/models/{model_id}/fit", json=body).status_code == 202
    assert_problem(idle_client.post(f"/v1/models/{model_id}/fit", json=body), 409)
    assert len(idle_client.get(f"/v1/jobs?model_id={model_id}").json()["items"]) == 1


def test_a_refit_bumps_the_version_and_is_seen_by_the_next_request(client):
    model_id = fitted_model(client)
    before = client.post(f"/v1/models/{model_id}/score", json={"data": [[0.0, 0.0]]}).json()
    shifted = three_blobs(seed=1) + 100.0
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": shifted.tolist()}).json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    assert client.get(f"/v1/models/{model_id}").json()["version"] == 2
    after = client.post(f"/v1/models/{model_id}/score", json={"data": [[0.0, 0.0]]}).json()
    assert after["log_likelihood"][0] < before["log_likelihood"][0] - 100


def test_warm_start_continues_from_the_fitted_parameters(client):
    model_id = fitted_model(client)
    job = client.post(
        f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist(), "warm_start": True}
    ).json()
    job = wait_for_job(client, job["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["n_iter"] <= 2


def test_sample_weights_change_the_fit(client):
    data = three_blobs()
    weights = np.where(np.arange(len(data)) < 200, 5.0, 1.0)
    model_id = create_model(client)
    job = client.post(
        f"/v1/models/{model_id}/fit",
        json={"data": data.tolist(), "sample_weight": weights.tolist()},
    ).json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"
    parameters = client.get(f"/v1/models/{model_id}/parameters").json()
    assert max(parameters["weights"]) > 0.6


def test_a_failed_fit_is_typed_and_keeps_the_previous_parameters(client):
    model_id = fitted_model(client, reg_covar=0.0)
    before = client.get(f"/v1/models/{model_id}/parameters").json()
    collapsing = [[5.0, 5.0]] * 10 + [[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]]
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": collapsing}).json()
    job = wait_for_job(client, job["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "collapsed_component"
    assert "reg_covar" in job["error"]["detail"]
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["status"], model["version"]) == ("ready", 1)
    assert client.get(f"/v1/models/{model_id}/parameters").json() == before


def test_a_model_whose_first_fit_failed_is_failed(client):
    model_id = create_model(client, reg_covar=0.0, n_components=2)
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": [[1.0, 1.0]] * 5}).json()
    assert wait_for_job(client, job["id"])["status"] == "failed"
    assert client.get(f"/v1/models/{model_id}").json()["status"] == "failed"


def test_list_models_and_delete_one(client):
    ids = [create_model(client) for _ in range(3)]
    listed = client.get("/v1/models?limit=500").json()
    assert sorted(m["id"] for m in listed["items"]) == sorted(ids)
    assert client.delete(f"/v1/models/{ids[0]}").status_code == 204
    assert_problem(client.get(f"/v1/models/{ids[0]}"), 404)


def test_deleting_a_model_mid_fit_leaves_no_orphans(client):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20000, 4))
    model_id = create_model(client, n_components=8, max_iter=10000, tol=0.0)
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
    wait_for_job(client, job["id"], until={"running"})
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    assert_problem(client.get(f"/v1/jobs/{job['id']}"), 404)
    assert client.get(f"/v1/jobs?model_id={model_id}").json()["items"] == []
    assert_problem(client.get(f"/v1/models/{model_id}"), 404)
    # The worker notices, stops the fit, and takes the next job.
    follow_up = fitted_model(client)
    assert client.get(f"/v1/models/{follow_up}").json()["status"] == "ready"


def test_models_carry_an_etag_that_changes_with_a_fit(client):
    created = client.post("/v1/models", json={"n_components": 3, "random_state": 0})
    model_id, etag = created.json()["id"], created.headers["etag"]
    assert client.get(f"/v1/models/{model_id}").headers["etag"] == etag
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist()}).json()
    wait_for_job(client, job["id"])
    assert client.get(f"/v1/models/{model_id}").headers["etag"] != etag


def test_delete_with_a_stale_if_match_is_412_and_keeps_the_model(client):
    created = client.post("/v1/models", json={"n_components": 3, "random_state": 0})
    model_id, stale = created.json()["id"], created.headers["etag"]
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": three_blobs().tolist()}).json()
    wait_for_job(client, job["id"])
    assert_problem(client.delete(f"/v1/models/{model_id}", headers={"If-Match": stale}), 412)
    assert client.get(f"/v1/models/{model_id}").status_code == 200
    fresh = client.get(f"/v1/models/{model_id}").headers["etag"]
    assert client.delete(f"/v1/models/{model_id}", headers={"If-Match": fresh}).status_code == 204
