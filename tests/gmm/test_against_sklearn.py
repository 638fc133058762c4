"""From identical initial parameters, the same iterations give scikit-learn's answer."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnMixture

from service.gmm import COVARIANCE_TYPES, FitConfig, MixtureParameters, fit_mixture

from .conftest import precisions_of, random_start

RTOL = 1e-6
N_ITER = 12


def _fit_both(X, covariance_type, n_components=3):
    start = random_start(X, n_components, covariance_type)
    init = dict(
        weights_init=start.weights, means_init=start.means, precisions_init=precisions_of(start)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SklearnMixture(
            n_components, covariance_type=covariance_type, max_iter=N_ITER, tol=0.0, **init
        ).fit(X)
    ours = fit_mixture(
        X, FitConfig(n_components, covariance_type, max_iter=N_ITER, tol=0.0), **init
    )
    return reference, ours


def _assert_close(actual, expected):
    expected = np.asarray(expected)
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_matches_sklearn_parameters_and_lower_bound(dataset, covariance_type):
    reference, ours = _fit_both(dataset, covariance_type)
    assert ours.n_iter == reference.n_iter_ == N_ITER
    _assert_close(ours.lower_bound, reference.lower_bound_)
    _assert_close(ours.lower_bound_history, reference.lower_bounds_)
    _assert_close(ours.parameters.weights, reference.weights_)
    _assert_close(ours.parameters.means, reference.means_)
    _assert_close(ours.parameters.covariances, reference.covariances_)
    _assert_close(ours.parameters.precisions_cholesky, reference.precisions_cholesky_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scoring_a_given_mixture_matches_sklearn(dataset, covariance_type):
    reference, _ = _fit_both(dataset, covariance_type)
    given = MixtureParameters(
        covariance_type,
        reference.weights_,
        reference.means_,
        reference.covariances_,
        reference.precisions_cholesky_,
    )
    _assert_close(given.score_samples(dataset), reference.score_samples(dataset))
    _assert_close(given.score(dataset), reference.score(dataset))
    _assert_close(given.predict_proba(dataset), reference.predict_proba(dataset))
    np.testing.assert_array_equal(given.predict(dataset), reference.predict(dataset))
    _assert_close(given.bic(dataset), reference.bic(dataset))
    _assert_close(given.aic(dataset), reference.aic(dataset))
    assert given.n_parameters == reference._n_parameters()
