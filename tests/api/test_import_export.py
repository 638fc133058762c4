"""Import a mixture fitted elsewhere, export one for scikit-learn: round trips to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from service.gmm.exchange import precisions_from_cholesky

from .helpers import assert_problem, create_model, fitted_model, three_blobs

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PROBE = np.random.default_rng(5).normal(size=(50, 2)) * 4.0


def _sklearn(covariance_type: str) -> GaussianMixture:
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(three_blobs())


def _import_body(gmm: GaussianMixture, form: str = "precisions_cholesky", **extra) -> dict:
    arrays = {
        "covariances": gmm.covariances_,
        "precisions": gmm.precisions_,
        "precisions_cholesky": gmm.precisions_cholesky_,
    }
    return {
        "covariance_type": gmm.covariance_type,
        "weights": gmm.weights_.tolist(),
        "means": gmm.means_.tolist(),
        form: arrays[form].tolist(),
        **extra,
    }


def _import(client, model_id: str, body: dict) -> dict:
    response = client.post(f"/v1/models/{model_id}/parameters", json=body)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("form", ["covariances", "precisions", "precisions_cholesky"])
def test_an_imported_sklearn_mixture_scores_as_sklearn_does(client, covariance_type, form):
    gmm = _sklearn(covariance_type)
    model_id = create_model(client)
    version = _import(client, model_id, _import_body(gmm, form))
    assert version["source"] == "import" and version["active"] and version["version"] == 1
    score = client.post(f"/v1/models/{model_id}/score", json={"data": PROBE.tolist()}).json()
    np.testing.assert_allclose(score["log_likelihood"], gmm.score_samples(PROBE), rtol=1e-10)
    predict = client.post(
        f"/v1/models/{model_id}/predict",
        json={"data": PROBE.tolist(), "return_probabilities": True},
    ).json()
    np.testing.assert_allclose(
        predict["probabilities"], gmm.predict_proba(PROBE), rtol=1e-10, atol=1e-12
    )
    assert predict["labels"] == gmm.predict(PROBE).tolist()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_an_exported_model_scores_in_sklearn_as_in_the_service(client, covariance_type):
    model_id = fitted_model(client, covariance_type=covariance_type)
    exported = client.get(f"/v1/models/{model_id}/parameters", params={"format": "sklearn"})
    assert exported.status_code == 200, exported.text
    attributes = exported.json()
    gmm = GaussianMixture(attributes["n_components"], covariance_type=covariance_type)
    for name, value in attributes.items():
        if name.endswith("_"):
            setattr(gmm, name, np.asarray(value) if isinstance(value, list) else value)
    served = client.post(f"/v1/models/{model_id}/score", json={"data": PROBE.tolist()}).json()
    np.testing.assert_allclose(gmm.score_samples(PROBE), served["log_likelihood"], rtol=1e-10)
    assert attributes["converged_"] is True and attributes["n_iter_"] >= 1
    np.testing.assert_allclose(
        attributes["precisions_"],
        precisions_from_cholesky(np.asarray(attributes["precisions_cholesky_"]), covariance_type),
    )


def test_the_exported_fit_outcome_is_the_versions(client):
    model_id = fitted_model(client)
    summary = client.get(f"/v1/models/{model_id}").json()["fit_summary"]
    exported = client.get(f"/v1/models/{model_id}/parameters?format=sklearn").json()
    assert exported["lower_bound_"] == summary["lower_bound"]
    assert exported["n_iter_"] == summary["n_iter"] and exported["version"] == 1


def test_an_import_becomes_a_new_version_of_a_fitted_model(client):
    model_id = fitted_model(client)
    version = _import(client, model_id, _import_body(_sklearn("diag"), activate=False))
    assert version["version"] == 2 and not version["active"]
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["active_version"], model["covariance_type"]) == (1, "full")
    client.post(f"/v1/models/{model_id}/activate", json={"version": 2})
    model = client.get(f"/v1/models/{model_id}").json()
    assert (model["active_version"], model["covariance_type"]) == (2, "diag")


def test_an_imported_mixture_without_a_threshold_takes_its_own_quantile(client):
    gmm = _sklearn("full")
    model_id = create_model(client, contamination=0.05)
    version = _import(client, model_id, _import_body(gmm))
    drawn, _ = gmm.sample(200_000)
    expected = np.quantile(-gmm.score_samples(drawn), 0.95)
    assert version["anomaly_threshold"] == pytest.approx(expected, rel=0.02)


def test_an_imported_threshold_is_kept(client):
    model_id = create_model(client)
    version = _import(client, model_id, _import_body(_sklearn("full"), anomaly_threshold=4.5))
    assert version["anomaly_threshold"] == 4.5
    flagged = client.post(f"/v1/models/{model_id}/anomalies", json={"data": [[0.0, 0.0]]}).json()
    assert flagged["threshold"] == 4.5


def _good(covariance_type: str = "full") -> dict:
    return _import_body(_sklearn(covariance_type), "covariances")


def _with(base: str = "full", **changes) -> dict:
    body = _good(base)
    for name, value in changes.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


FULL = _good()["covariances"]
NOT_SYMMETRIC = [[[1.0, 0.5], [0.0, 1.0]], FULL[1], FULL[2]]
NOT_PD = [[[1.0, 2.0], [2.0, 1.0]], FULL[1], FULL[2]]
LOWER_AND_UPPER = [[[1.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]

BAD_IMPORTS = [
    ("negative weight", _with(weights=[1.2, -0.1, -0.1]), "#/weights"),
    ("weights not summing to 1", _with(weights=[0.3, 0.3, 0.3]), "#/weights"),
    ("too few weights", _with(weights=[0.5, 0.5]), "#/weights"),
    ("means of another K", _with(means=[[0.0, 0.0], [1.0, 1.0]]), "#/means"),
    ("ragged means", _with(means=[[0.0, 0.0], [1.0], [2.0, 2.0]]), "#/means"),
    ("means not a matrix", _with(means=[0.0, 1.0, 2.0]), "#/means/0"),
    ("covariances of another width", _with(covariances=[[[1.0]]] * 3), "#/covariances"),
    ("covariances not symmetric", _with(covariances=NOT_SYMMETRIC), "#/covariances/0"),
    ("covariances not positive definite", _with(covariances=NOT_PD), "#/covariances/0"),
    ("tied covariance of a full shape", _with("tied", covariances=FULL), "#/covariances"),
    (
        "diag variance zero",
        _with("diag", covariances=[[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]),
        "#/covariances",
    ),
    (
        "spherical variance negative",
        _with("spherical", covariances=[1.0, -1.0, 1.0]),
        "#/covariances",
    ),
    ("no precision form", _with(covariances=None), "#/covariances"),
    ("two precision forms", _with(precisions=FULL), "#/precisions"),
    (
        "precisions_cholesky not triangular",
        _with(covariances=None, precisions_cholesky=LOWER_AND_UPPER),
        "#/precisions_cholesky/0",
    ),
    ("NaN in means", _with(means="NaN"), "#/means"),
    ("unknown covariance type", _with(covariance_type="banana"), "#/covariance_type"),
    ("unknown field", _with(extra_field=1), "#/extra_field"),
]


@pytest.mark.parametrize(
    "body, pointer", [case[1:] for case in BAD_IMPORTS], ids=[case[0] for case in BAD_IMPORTS]
)
def test_a_malformed_import_is_422_naming_the_field_and_stores_nothing(client, body, pointer):
    model_id = fitted_model(client)
    problem = assert_problem(client.post(f"/v1/models/{model_id}/parameters", json=body), 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem
    assert client.get(f"/v1/models/{model_id}").json()["version"] == 1
    assert len(client.get(f"/v1/models/{model_id}/versions").json()["items"]) == 1


def test_importing_into_an_unknown_model_is_404(client):
    assert_problem(client.post("/v1/models/mdl_nope/parameters", json=_good()), 404)
