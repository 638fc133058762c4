"""Data sets and starting points shared by the core's tests."""

from __future__ import annotations

import numpy as np
import pytest

from service.gmm import MixtureParameters, estimate_parameters


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
