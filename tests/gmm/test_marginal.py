"""Rows with missing features (NaN) are scored under the exact marginal mixture."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from service.gmm import COVARIANCE_TYPES, InvalidDataError, MixtureParameters, marginal

from .conftest import dense_covariances, hide_at_random, random_mixture, rows_with_missing

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


def every_pattern(n_features: int) -> np.ndarray:
    """Every missingness pattern with at least one feature observed, once: (2^D - 1, D)."""
    codes = np.arange(1, 2**n_features)
    return ((codes[:, None] >> np.arange(n_features)) & 1) == 0


def test_a_batch_where_every_row_has_its_own_pattern_scores_exactly(mixture, grouping):
    patterns = every_pattern(mixture.n_features)
    X, _ = mixture.sample(len(patterns), random_state=5)
    X[patterns] = np.nan
    expected = [logsumexp(marginal_log_prob(mixture, x)) for x in X]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=RTOL)


def test_rows_with_all_but_one_feature_missing_score_exactly(mixture, grouping):
    X, _ = mixture.sample(60, random_state=6)
    kept = np.arange(60) % mixture.n_features
    X[np.arange(mixture.n_features)[None, :] != kept[:, None]] = np.nan
    expected = [logsumexp(marginal_log_prob(mixture, x)) for x in X]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=RTOL)


def test_a_common_pattern_beside_rare_ones_with_as_many_missing_scores_exactly(mixture):
    """The common pattern gets its own marginal kernel; the rare ones are factored together."""
    X, _ = mixture.sample(400, random_state=7)
    X[:300, [1, 4]] = np.nan
    rng = np.random.default_rng(7)
    for row in range(300, 400):
        X[row, rng.choice(mixture.n_features, size=2, replace=False)] = np.nan
    expected = [logsumexp(marginal_log_prob(mixture, x)) for x in X]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=RTOL)


def test_scores_do_not_depend_on_how_rows_and_patterns_are_split(mixture, monkeypatch):
    X = rows_with_missing(mixture)
    whole = mixture.score_samples(X)
    monkeypatch.setattr(marginal, "_BLOCK_VALUES", 1)  # blocks of 128 rows
    monkeypatch.setattr(marginal, "_FACTOR_VALUES", 1)  # every pattern factored alone
    np.testing.assert_allclose(mixture.score_samples(X), whole, rtol=1e-13)


def extended_precision_log_pdf(x, mean, covariance) -> float:
    """log N(x | mean, covariance) by a Cholesky factorisation in long double (64-bit mantissa)."""
    d = x.astype(np.longdouble) - mean.astype(np.longdouble)
    covariance = covariance.astype(np.longdouble)
    n = len(d)
    lower = np.zeros((n, n), dtype=np.longdouble)
    for j in range(n):
        lower[j, j] = np.sqrt(covariance[j, j] - np.sum(lower[j, :j] ** 2))
        for i in range(j + 1, n):
            lower[i, j] = (covariance[i, j] - np.sum(lower[i, :j] * lower[j, :j])) / lower[j, j]
    z = np.zeros(n, dtype=np.longdouble)
    for i in range(n):
        z[i] = (d[i] - np.sum(lower[i, :i] * z[:i])) / lower[i, i]
    half_log_det = np.sum(np.log(np.diagonal(lower)))
    return float(-0.5 * np.sum(z * z) - half_log_det - 0.5 * n * np.log(2.0 * np.pi))


def ill_conditioned_mixture(condition: float):
    """Full covariances with eigenvalues from 1 down to 1 / condition, randomly rotated."""
    rng = np.random.default_rng(0)
    n_features, n_components = 6, 3
    covariances = []
    for _ in range(n_components):
        rotation, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        covariance = (rotation * np.logspace(0, -np.log10(condition), n_features)) @ rotation.T
        covariances.append((covariance + covariance.T) / 2)
    return MixtureParameters.from_covariances(
        rng.dirichlet(np.full(n_components, 3.0)),
        rng.normal(scale=3.0, size=(n_components, n_features)),
        np.array(covariances),
        "full",
    )


def test_rows_with_missing_features_stay_accurate_in_an_ill_conditioned_model(grouping):
    """Condition number 1e8: a missing feature nearly determined by observed ones.

    Subtracting P_om P_mm^-1 P_mo from P_oo would lose about 1e-8 of the
    log-density there (the expanded quadratic form of complete rows does);
    the rows where that cancellation is large are scored from S_oo instead.
    The reference is computed in extended precision (scipy's own error here
    is about 6e-10).
    """
    mixture = ill_conditioned_mixture(1e8)
    X, _ = mixture.sample(300, random_state=2)
    X = hide_at_random(X, 0.4, seed=2)
    X = X[np.isnan(X).any(axis=1)]
    expected = [
        logsumexp(
            [
                np.log(mixture.weights[k])
                + extended_precision_log_pdf(
                    x[~np.isnan(x)],
                    mixture.means[k, ~np.isnan(x)],
                    mixture.covariances[k][np.ix_(~np.isnan(x), ~np.isnan(x))],
                )
                for k in range(mixture.n_components)
            ]
        )
        for x in X
    ]
    np.testing.assert_allclose(mixture.score_samples(X), expected, rtol=1e-9)
