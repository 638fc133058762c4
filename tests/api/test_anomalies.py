"""Anomalies you can act on, over HTTP on SQLite and PostgreSQL: p-values, contamination,
explanations, missing features, conditionals, imputation and drift monitoring."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from ..conftest import wait_for_job
from .helpers import assert_problem, create_model, fitted_model, three_blobs

TRAIN = three_blobs()


def _parameters(client, model_id: str) -> dict:
    parameters = client.get(f"/v1/models/{model_id}/parameters").json()
    return {name: np.asarray(value) for name, value in parameters.items() if name != "version"}


def _marginal_log_density(parameters: dict, row: list[float | None]) -> float:
    """scipy's multivariate normal on the features the row has, mixed by the weights."""
    seen = [j for j, value in enumerate(row) if value is not None]
    x = np.array([row[j] for j in seen])
    terms = [
        np.log(w) + stats.multivariate_normal(m[seen], c[np.ix_(seen, seen)]).logpdf(x)
        for w, m, c in zip(
            parameters["weights"], parameters["means"], parameters["covariances"], strict=True
        )
    ]
    return float(logsumexp(terms))


def test_p_values_count_training_points_scoring_at_least_as_high(client):
    model_id = fitted_model(client)
    points = [[0.0, 0.0], [3.0, 3.0], [20.0, 20.0]]
    answer = client.post(f"/v1/models/{model_id}/anomalies", json={"data": points}).json()
    train_scores = -np.asarray(
        client.post(f"/v1/models/{model_id}/score", json={"data": TRAIN.tolist()}).json()[
            "log_likelihood"
        ]
    )
    expected = [(np.sum(train_scores >= s) + 1) / (len(train_scores) + 1) for s in answer["scores"]]
    np.testing.assert_allclose(answer["p_values"], expected, rtol=1e-12)
    assert answer["p_values"][2] == pytest.approx(1 / (len(TRAIN) + 1))


def test_contamination_sets_the_threshold_from_the_training_scores(client):
    model_id = fitted_model(client)
    train_scores = -np.asarray(
        client.post(f"/v1/models/{model_id}/score", json={"data": TRAIN.tolist()}).json()[
            "log_likelihood"
        ]
    )
    answer = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": TRAIN.tolist(), "contamination": 0.1}
    ).json()
    assert answer["threshold"] == pytest.approx(np.quantile(train_scores, 0.9), rel=1e-12)
    assert np.mean(answer["is_anomaly"]) == pytest.approx(0.1, abs=0.01)


def test_explanations_rank_the_shifted_feature_first(client):
    rng = np.random.default_rng(3)
    centres = [[0, 0, 0, 0], [20, 20, 20, 20], [-20, 20, -20, 20]]
    data = rng.normal(size=(900, 4)) + np.repeat(centres, 300, axis=0)
    model_id = fitted_model(client, data)
    odd = data[:20].copy()
    odd[np.arange(20), np.arange(20) % 4] += 6.0
    answer = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": odd.tolist(), "explain": True}
    ).json()
    firsts = [row[0]["feature"] for row in answer["explanations"]]
    assert firsts == (np.arange(20) % 4).tolist()
    assert all(len(row) == 4 for row in answer["explanations"])


def test_a_row_with_missing_features_scores_under_the_exact_marginal(client):
    model_id = fitted_model(client)
    rows = [[1.0, None], [None, 3.5], [0.5, 0.25]]
    answer = client.post(f"/v1/models/{model_id}/score", json={"data": rows}).json()
    parameters = _parameters(client, model_id)
    expected = [_marginal_log_density(parameters, row) for row in rows]
    np.testing.assert_allclose(answer["log_likelihood"], expected, rtol=1e-10)


def test_nan_in_an_npy_body_is_a_missing_feature(client):
    model_id = fitted_model(client)
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, np.nan]]))
    response = client.post(
        f"/v1/models/{model_id}/score",
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-npy"},
    )
    json_answer = client.post(f"/v1/models/{model_id}/score", json={"data": [[1.0, None]]})
    assert response.json() == json_answer.json()


def test_condition_gives_each_rows_conditional_mixture(client):
    model_id = fitted_model(client)
    answer = client.post(
        f"/v1/models/{model_id}/condition", json={"data": [[1.0, None], [0.0, 0.0]]}
    ).json()
    first, complete = answer["results"]
    assert first["missing"] == [1] and complete["missing"] == []
    p = _parameters(client, model_id)
    log_w = [
        np.log(w) + stats.norm(m[0], np.sqrt(c[0, 0])).logpdf(1.0)
        for w, m, c in zip(p["weights"], p["means"], p["covariances"], strict=True)
    ]
    np.testing.assert_allclose(first["weights"], np.exp(log_w - logsumexp(log_w)), rtol=1e-10)
    for k, (m, c) in enumerate(zip(p["means"], p["covariances"], strict=True)):
        mean = m[1] + c[1, 0] / c[0, 0] * (1.0 - m[0])
        variance = c[1, 1] - c[1, 0] ** 2 / c[0, 0]
        assert first["means"][k][0] == pytest.approx(mean, rel=1e-10)
        assert first["covariances"][k][0][0] == pytest.approx(variance, rel=1e-10)


def test_impute_fills_nulls_with_the_conditional_mean(client):
    model_id = fitted_model(client)
    conditional = client.post(
        f"/v1/models/{model_id}/condition", json={"data": [[1.0, None]]}
    ).json()["results"][0]
    answer = client.post(f"/v1/models/{model_id}/impute", json={"data": [[1.0, None]]}).json()
    weights = np.asarray(conditional["weights"])
    means = np.asarray(conditional["means"])[:, 0]
    variances = np.asarray(conditional["covariances"])[:, 0, 0]
    mean = weights @ means
    assert answer["data"][0] == pytest.approx([1.0, mean], rel=1e-10)
    std = np.sqrt(weights @ (variances + means**2) - mean**2)
    assert answer["std"][0][0] is None and answer["std"][0][1] == pytest.approx(std, rel=1e-10)


def test_monitoring_compares_live_scores_with_the_training_scores(client):
    model_id = fitted_model(client, contamination=0.05)
    before = client.get(f"/v1/models/{model_id}/monitoring").json()
    assert before["n_scored"] == 0 and before["ks_statistic"] is None
    drifted = three_blobs(seed=9) * 3.0
    client.post(f"/v1/models/{model_id}/score", json={"data": drifted.tolist()})
    client.post(f"/v1/models/{model_id}/anomalies", json={"data": drifted[:100].tolist()})
    after = client.get(f"/v1/models/{model_id}/monitoring").json()
    assert after["n_scored"] == len(drifted) + 100 and after["version"] == 1
    assert after["contamination"] == 0.05
    assert after["mean_log_likelihood"] < after["training_mean_log_likelihood"]
    assert after["flagged_fraction"] > 0.5 and after["ks_statistic"] > 0.5
    assert after["ks_pvalue"] < 1e-6


@pytest.mark.parametrize(
    "route, body, pointer",
    [
        ("anomalies", {"data": [[None, None]]}, "#/data/0"),
        ("score", {"data": [[1.0, 2.0], [None, None]]}, "#/data/1"),
        ("anomalies", {"data": [[1.0, 2.0]], "contamination": 0.0}, "#/contamination"),
        ("anomalies", {"data": [[1.0, 2.0]], "contamination": 0.7}, "#/contamination"),
        ("condition", {"data": [[None, None]]}, "#/data/0"),
        ("impute", {"data": [[1.0]]}, "#/data/0"),
    ],
)
def test_bad_anomaly_and_conditional_input_is_422_naming_the_field(client, route, body, pointer):
    model_id = fitted_model(client)
    problem = assert_problem(client.post(f"/v1/models/{model_id}/{route}", json=body), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem


def test_explain_on_a_one_feature_model_is_422(client):
    model_id = create_model(client, n_components=2)
    job = client.post(
        f"/v1/models/{model_id}/fit", json={"data": [[0.0], [0.1], [5.0], [5.1]]}
    ).json()
    wait_for_job(client, job["id"])
    problem = assert_problem(
        client.post(f"/v1/models/{model_id}/anomalies", json={"data": [[0.0]], "explain": True}),
        422,
    )
    assert problem["errors"][0]["pointer"] == "#/explain"


def test_metrics_report_live_scores_per_served_version(client):
    model_id = fitted_model(client)
    client.post(f"/v1/models/{model_id}/score", json={"data": TRAIN[:50].tolist()})
    text = client.get("/metrics").text
    labels = f'model_id="{model_id}",version="1"'
    assert f"gmm_live_rows_scored{{{labels}}} 50.0" in text
    assert f"gmm_live_ks_statistic{{{labels}}}" in text
