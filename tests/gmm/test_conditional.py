"""The missing features given the observed ones: conditional mixtures and imputation."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from service.gmm import COVARIANCE_TYPES, FitConfig, InvalidDataError, fit_mixture

from .conftest import dense_covariances, hide_at_random, random_mixture, rows_with_missing

RTOL = 1e-10


@pytest.fixture(params=COVARIANCE_TYPES)
def mixture(request):
    return random_mixture(request.param, n_features=5, n_components=3, seed=5)


def textbook_conditional(mixture, x):
    """Per component: the Schur complement formulas with np.linalg.solve; weights from scipy."""
    o, m = ~np.isnan(x), np.isnan(x)
    log_weights, means, covariances = [], [], []
    for k, S in enumerate(dense_covariances(mixture)):
        mu = mixture.means[k]
        S_oo, S_mo, S_mm = S[np.ix_(o, o)], S[np.ix_(m, o)], S[np.ix_(m, m)]
        means.append(mu[m] + S_mo @ np.linalg.solve(S_oo, x[o] - mu[o]))
        covariances.append(S_mm - S_mo @ np.linalg.solve(S_oo, S_mo.T))
        log_weights.append(
            np.log(mixture.weights[k]) + multivariate_normal(mu[o], S_oo).logpdf(x[o])
        )
    log_weights = np.array(log_weights)
    return np.exp(log_weights - logsumexp(log_weights)), np.array(means), np.array(covariances)


def test_condition_gives_the_textbook_conditional_of_each_component(mixture, grouping):
    X = rows_with_missing(mixture, n_rows=120)
    for x, result in zip(X, mixture.condition(X), strict=True):
        weights, means, covariances = textbook_conditional(mixture, x)
        np.testing.assert_array_equal(result.missing, np.flatnonzero(np.isnan(x)))
        np.testing.assert_allclose(result.weights, weights, rtol=RTOL, atol=1e-15)
        np.testing.assert_allclose(result.means, means, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(result.covariances, covariances, rtol=RTOL, atol=1e-12)


def test_condition_of_a_complete_row_is_empty_with_the_responsibilities_as_weights(mixture):
    X = mixture.sample(3, random_state=0)[0]
    for result, proba in zip(mixture.condition(X), mixture.predict_proba(X), strict=True):
        assert result.missing.shape == (0,)
        assert result.means.shape == (mixture.n_components, 0)
        assert result.covariances.shape == (mixture.n_components, 0, 0)
        np.testing.assert_allclose(result.weights, proba, rtol=1e-12)


def test_impute_fills_the_conditional_mixture_mean_and_its_standard_deviation(mixture, grouping):
    X = rows_with_missing(mixture, n_rows=120)
    filled, std = mixture.impute(X)
    for x, x_filled, x_std in zip(X, filled, std, strict=True):
        m = np.isnan(x)
        weights, means, covariances = textbook_conditional(mixture, x)
        mean = weights @ means
        second = np.einsum("k,kij->ij", weights, covariances + means[:, :, None] * means[:, None])
        np.testing.assert_array_equal(x_filled[~m], x[~m])
        assert np.all(np.isnan(x_std[~m]))
        np.testing.assert_allclose(x_filled[m], mean, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(
            x_std[m], np.sqrt(np.diag(second - np.outer(mean, mean))), rtol=1e-8
        )


def test_condition_and_impute_reject_a_row_missing_every_feature(mixture):
    X = rows_with_missing(mixture, n_rows=60)
    X[3] = np.nan
    with pytest.raises(InvalidDataError, match="row 3"):
        mixture.condition(X)
    with pytest.raises(InvalidDataError, match="row 3"):
        mixture.impute(X)


def test_imputation_from_a_fitted_model_is_nearly_as_good_as_from_the_true_one():
    """30% hidden at random: RMSE within 5% of the Bayes-optimal conditional mean."""
    truth = random_mixture("full", n_features=6, n_components=3, seed=11)
    train, _ = truth.sample(20_000, random_state=12)
    fitted = fit_mixture(train, FitConfig(3, "full", n_init=2, random_state=0)).parameters
    X, _ = truth.sample(20_000, random_state=13)
    hidden = hide_at_random(X, 0.3, seed=14)
    m = np.isnan(hidden)

    def rmse(parameters):
        return np.sqrt(np.mean((parameters.impute(hidden)[0][m] - X[m]) ** 2))

    assert rmse(fitted) <= 1.05 * rmse(truth)
