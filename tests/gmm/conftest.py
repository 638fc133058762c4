"""Data sets and starting points shared by the core's tests."""

from __future__ import annotations

import numpy as np
import pytest

from service.gmm import MixtureParameters, estimate_parameters, marginal


def make_blobs(
    seed: int, n_samples: int, n_features: int, n_centers: int, spread: float
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(n_centers, n_features))
    labels = rng.integers(n_centers, size=n_samples)
    scales = rng.uniform(0.5, 1.5, size=(n_centers, n_features))
    return centers[labels] + rng.normal(size=(n_samples, n_features)) * scales[labels]


DATASETS = {
    "well-separated": lambda: make_blobs(0, 600, 3, 3, spread=10.0),
    "overlapping": lambda: make_blobs(1, 500, 2, 4, spread=1.0),
    "one-dimensional": lambda: make_blobs(2, 400, 1, 3, spread=4.0),
    "high-dimensional": lambda: make_blobs(3, 800, 24, 3, spread=3.0),
    "few-samples": lambda: make_blobs(4, 12, 2, 2, spread=3.0),
}


def precisions_of(parameters: MixtureParameters) -> np.ndarray:
    """Precision matrices in scikit-learn's ``precisions_init`` layout."""
    u = parameters.precisions_cholesky
    if parameters.covariance_type == "full":
        return u @ np.transpose(u, (0, 2, 1))
    if parameters.covariance_type == "tied":
        return u @ u.T
    return u**2


def random_start(
    X: np.ndarray, n_components: int, covariance_type: str, seed: int = 0
) -> MixtureParameters:
    """A soft random start: the M-step of random responsibilities."""
    rng = np.random.default_rng(seed)
    resp = rng.uniform(size=(len(X), n_components)) ** 4
    resp /= resp.sum(axis=1, keepdims=True)
    return estimate_parameters(X, resp, covariance_type=covariance_type, reg_covar=1e-3)


@pytest.fixture(params=sorted(DATASETS))
def dataset(request) -> np.ndarray:
    return DATASETS[request.param]()


def random_mixture(
    covariance_type: str, n_features: int, n_components: int, seed: int
) -> MixtureParameters:
    """A mixture with spread-out means and random, well-conditioned covariances."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = rng.normal(scale=3.0, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features))
    full = factors @ np.transpose(factors, (0, 2, 1)) / n_features + 0.3 * np.eye(n_features)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": rng.uniform(0.3, 2.0, size=(n_components, n_features)),
        "spherical": rng.uniform(0.3, 2.0, size=n_components),
    }[covariance_type]
    return MixtureParameters.from_covariances(weights, means, covariances, covariance_type)


def dense_covariances(parameters: MixtureParameters) -> np.ndarray:
    """Each component's covariance matrix, shape (n_components, n_features, n_features)."""
    k, d, covariances = parameters.n_components, parameters.n_features, parameters.covariances
    return {
        "full": lambda: covariances,
        "tied": lambda: np.broadcast_to(covariances, (k, d, d)),
        "diag": lambda: np.stack([np.diag(c) for c in covariances]),
        "spherical": lambda: covariances[:, None, None] * np.eye(d),
    }[parameters.covariance_type]()


def hide_at_random(X: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of ``X`` with about ``fraction`` of its values NaN, every row keeping one."""
    rng = np.random.default_rng(seed)
    hidden = rng.random(X.shape) < fraction
    hidden[np.arange(len(X)), rng.integers(X.shape[1], size=len(X))] = False
    return np.where(hidden, np.nan, X)


def rows_with_missing(mixture, n_rows=300, seed=2):
    """Points of the mixture and far from it, ~40% missing, some patterns repeated, some rows whole."""
    X, _ = mixture.sample(n_rows, random_state=seed)
    X[: n_rows // 10] *= 4.0
    X = hide_at_random(X, 0.4, seed)
    X[-40:-20] = np.where(np.isnan(X[-40]), np.nan, X[-40:-20])
    X[-20:] = mixture.sample(20, random_state=seed + 1)[0]
    return X


@pytest.fixture(params=["pattern-per-row", "pattern-shared"])
def grouping(request, monkeypatch):
    """Both ways rows are factored: row by row, and once per shared pattern."""
    if request.param == "pattern-shared":
        monkeypatch.setattr(marginal, "_MIN_SHARED_ROWS", 2)
        monkeypatch.setattr(marginal, "_SHARED_WORK", 0)
    else:
        monkeypatch.setattr(marginal, "_MIN_SHARED_ROWS", 10**9)
    return request.param


def assert_same_fit(actual, expected, tolerance: float = 1e-10) -> None:
    """Two FitResults agree to ``tolerance`` (relative and absolute): weights,
    means, covariances, every lower bound, n_iter and convergence."""
    assert actual.n_iter == expected.n_iter
    assert actual.converged == expected.converged
    np.testing.assert_allclose(
        actual.lower_bound_history, expected.lower_bound_history, rtol=tolerance, atol=tolerance
    )
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(
            getattr(actual.parameters, name),
            getattr(expected.parameters, name),
            rtol=tolerance,
            atol=tolerance,
            err_msg=name,
        )
