"""Rows with missing features (NaN) are scored under the exact marginal mixture."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from service.gmm import COVARIANCE_TYPES, InvalidDataError, marginal

from .conftest import dense_covariances, random_mixture, rows_with_missing

RTOL = 1e-10


@pytest.fixture(params=COVARIANCE_TYPES)
def mixture(request):
    return random_mixture(request.param, n_features=6, n_components=3, seed=1)


def marginal_log_prob(mixture, x):
    """log pi_k + log N(x_o | mu_ko, S_k,oo) from scipy, per component: shape (n_components,)."""
    observed = ~np.isnan(x)
    covariances = dense_covariances(mixture)
    return np.array(
        [
            np.log(mixture.weights[k])
            + multivariate_normal(
                mixture.means[k, observed], covariances[k][np.ix_(observed, observed)]
            ).logpdf(x[observed])
            for k in range(mixture.n_components)
        ]
    )


def test_score_samples_is_the_log_density_of_the_marginal_mixture(mixture, grouping):
    X = rows_with_missing(mixture)
    expected = [logsumexp(marginal_log_prob(mixture, x)) for x in X]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=RTOL)


def test_predict_proba_is_the_posterior_under_the_marginal_mixture(mixture, grouping):
    X = rows_with_missing(mixture)
    log_prob = np.array([marginal_log_prob(mixture, x) for x in X])
    expected = np.exp(log_prob - logsumexp(log_prob, axis=1, keepdims=True))
    np.testing.assert_allclose(mixture.predict_proba(X), expected, rtol=RTOL, atol=1e-14)


def test_predict_and_predict_with_proba_take_the_most_probable_marginal_component(mixture):
    X = rows_with_missing(mixture)
    expected = np.array([marginal_log_prob(mixture, x).argmax() for x in X])
    np.testing.assert_array_equal(mixture.predict(X), expected)
    labels, proba = mixture.predict_with_proba(X)
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_allclose(proba, mixture.predict_proba(X), rtol=RTOL, atol=1e-14)


def test_complete_rows_score_the_same_beside_incomplete_rows(mixture):
    X = rows_with_missing(mixture)
    complete = ~np.isnan(X).any(axis=1)
    np.testing.assert_allclose(
        mixture.score_samples(X)[complete], mixture.score_samples(X[complete]), rtol=1e-13
    )


def test_a_row_missing_every_feature_is_invalid_data_naming_the_row(mixture):
    X = rows_with_missing(mixture)
    X[5] = np.nan
    with pytest.raises(InvalidDataError, match="row 5"):
        mixture.score_samples(X)


def test_infinity_is_still_invalid_data_naming_the_row(mixture):
    X = rows_with_missing(mixture)
    X[7, 0] = np.inf
    with pytest.raises(InvalidDataError, match="row 7"):
        mixture.predict(X)


def test_every_missing_feature_count_scores_exactly():
    """From one feature present to one missing, in a wider model (D = 12)."""
    mixture = random_mixture("full", n_features=12, n_components=4, seed=3)
    X, _ = mixture.sample(12, random_state=4)
    for i in range(12):
        X[i, np.random.default_rng(i).permutation(12)[:i]] = np.nan
    expected = [logsumexp(marginal_log_prob(mixture, x)) for x in X]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=RTOL)


def test_a_model_keeps_the_marginal_kernels_of_a_bounded_number_of_patterns(monkeypatch):
    monkeypatch.setattr(marginal, "_MARGINALS_KEPT", 3)
    monkeypatch.setattr(marginal, "_MIN_SHARED_ROWS", 2)
    monkeypatch.setattr(marginal, "_SHARED_WORK", 0)
    mixture = random_mixture("full", n_features=6, n_components=2, seed=7)
    X = mixture.sample(40, random_state=8)[0]
    for feature in range(6):  # six patterns of 40 rows, one after another
        hidden = X.copy()
        hidden[:, feature] = np.nan
        expected = [logsumexp(marginal_log_prob(mixture, x)) for x in hidden]
        np.testing.assert_allclose(mixture.score_samples(hidden), expected, rtol=RTOL)
    assert len(mixture.missing_kernel._marginals) == 3


@pytest.mark.parametrize("scale", [1e-90, 1e90])
def test_log_density_changes_by_the_jacobian_when_units_change_even_at_extreme_scales(
    grouping, scale
):
    """log p(s x_o) = log p(x_o) - n_o log s, with pivot products far outside the float range."""
    mixture = random_mixture("full", n_features=6, n_components=3, seed=1)
    rescaled = type(mixture).from_covariances(
        mixture.weights, mixture.means * scale, mixture.covariances * scale**2
    )
    X = rows_with_missing(mixture)
    n_observed = np.sum(~np.isnan(X), axis=1)
    np.testing.assert_allclose(
        rescaled.score_samples(X * scale),
        mixture.score_samples(X) - n_observed * np.log(scale),
        rtol=RTOL,
    )
