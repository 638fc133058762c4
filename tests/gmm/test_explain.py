"""Explanations: each feature's contribution to how unlikely a row is."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from service.gmm import COVARIANCE_TYPES, FitConfig, InvalidParameterError, fit_mixture

from .conftest import dense_covariances, random_mixture, rows_with_missing


@pytest.fixture(params=COVARIANCE_TYPES)
def mixture(request):
    return random_mixture(request.param, n_features=5, n_components=3, seed=21)


def log_weighted(mixture, x, features):
    """log pi_k + log N(x_F | mu_kF, S_k,FF) for a set of features F (scipy), shape (K,)."""
    covariances = dense_covariances(mixture)
    log_prob = np.log(mixture.weights)
    if not features.any():
        return log_prob
    return log_prob + [
        multivariate_normal(mixture.means[k, features], c[np.ix_(features, features)]).logpdf(
            x[features]
        )
        for k, c in enumerate(covariances)
    ]


def textbook_contribution(mixture, x, j):
    """-log p(x_j | x_rest) - sum_k w_k 0.5 log(2 pi e s_k^2), all from the covariances."""
    observed = ~np.isnan(x)
    rest = observed.copy()
    rest[j] = False
    log_rest = log_weighted(mixture, x, rest)
    weights = np.exp(log_rest - logsumexp(log_rest))
    variances = [
        c[j, j] - c[j, rest] @ np.linalg.solve(c[np.ix_(rest, rest)], c[rest, j])
        for c in dense_covariances(mixture)
    ]
    surprise = logsumexp(log_rest) - logsumexp(log_weighted(mixture, x, observed))
    return surprise - weights @ (0.5 * np.log(2 * np.pi * np.e * np.array(variances)))


def test_contributions_are_the_conditional_surprise_less_its_expected_value(mixture, grouping):
    X = rows_with_missing(mixture, n_rows=60)
    explanations = mixture.explain(X)
    for x, features, contributions in zip(
        X, explanations.features, explanations.contributions, strict=True
    ):
        n_observed = int(np.sum(~np.isnan(x)))
        expected = [textbook_contribution(mixture, x, j) for j in features[:n_observed]]
        np.testing.assert_allclose(contributions[:n_observed], expected, rtol=1e-9, atol=1e-9)


def test_features_come_largest_contribution_first_and_missing_ones_last(mixture):
    X = rows_with_missing(mixture, n_rows=60)
    explanations = mixture.explain(X)
    for x, features, contributions in zip(
        X, explanations.features, explanations.contributions, strict=True
    ):
        n_observed = int(np.sum(~np.isnan(x)))
        assert sorted(features) == list(range(mixture.n_features))
        assert np.all(np.diff(contributions[:n_observed]) <= 0)
        assert np.all(np.isnan(x[features[n_observed:]]))
        assert np.all(np.isnan(contributions[n_observed:]))


def test_contributions_do_not_depend_on_the_features_units(mixture):
    scale = np.array([1.0, 1000.0, 0.001, 3.0, 1.0])
    full = dense_covariances(mixture) * scale[:, None] * scale[None, :]
    rescaled = type(mixture).from_covariances(mixture.weights, mixture.means * scale, full)
    X = mixture.sample(20, random_state=3)[0]
    np.testing.assert_allclose(
        rescaled.explain(X * scale).contributions,
        mixture.explain(X).contributions,
        rtol=1e-7,
        atol=1e-9,
    )


def test_for_one_gaussian_a_contribution_is_half_the_squared_conditional_z_score_less_half():
    mixture = random_mixture("full", n_features=4, n_components=1, seed=4)
    x = mixture.sample(1, random_state=5)[0][0]
    covariance = mixture.covariances[0]
    explanations = mixture.explain(x[None, :])
    for j, contribution in zip(
        explanations.features[0], explanations.contributions[0], strict=True
    ):
        rest = np.arange(4) != j
        solve = np.linalg.solve(covariance[np.ix_(rest, rest)], covariance[rest, j])
        mean = mixture.means[0, j] + solve @ (x[rest] - mixture.means[0, rest])
        variance = covariance[j, j] - covariance[j, rest] @ solve
        assert contribution == pytest.approx(0.5 * (x[j] - mean) ** 2 / variance - 0.5)


def test_a_feature_shifted_by_six_standard_deviations_ranks_first():
    """D = 8, K = 3, fitted on clean data; one feature of each test row shifted by 6 sigma."""
    truth = random_mixture("full", n_features=8, n_components=3, seed=31)
    train, _ = truth.sample(20_000, random_state=32)
    fitted = fit_mixture(train, FitConfig(3, "full", n_init=2, random_state=0)).parameters
    X, components = truth.sample(2_000, random_state=33)
    rng = np.random.default_rng(34)
    shifted = rng.integers(8, size=len(X))
    sigma = np.sqrt(truth.covariances[components, shifted, shifted])
    X[np.arange(len(X)), shifted] += rng.choice([-6.0, 6.0], size=len(X)) * sigma
    ranked_first = fitted.explain(X).features[:, 0]
    assert np.mean(ranked_first == shifted) >= 0.99


def test_a_model_with_one_feature_cannot_explain():
    mixture = random_mixture("full", n_features=1, n_components=2, seed=0)
    with pytest.raises(InvalidParameterError, match="two features"):
        mixture.explain(np.zeros((3, 1)))
