"""A fitted mixture: serialisation, sampling, and scoring checks."""

import numpy as np
import pytest

from service.gmm import (
    COVARIANCE_TYPES,
    FitConfig,
    InvalidDataError,
    MixtureParameters,
    fit_mixture,
)

from .conftest import make_blobs


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted(request):
    X = make_blobs(6, 500, 3, 3, spread=6.0)
    return fit_mixture(X, FitConfig(3, request.param, random_state=0)).parameters


def test_bytes_round_trip_is_exact(fitted):
    restored = MixtureParameters.from_bytes(fitted.to_bytes())
    assert restored.covariance_type == fitted.covariance_type
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(fitted, name))


def test_precision_factors_rebuild_the_covariances(fitted):
    rebuilt = MixtureParameters.from_precisions_cholesky(
        fitted.weights, fitted.means, fitted.precisions_cholesky, fitted.covariance_type
    )
    np.testing.assert_allclose(rebuilt.covariances, fitted.covariances, rtol=1e-10)


def test_sample_with_the_same_random_state_repeats(fitted):
    first, first_components = fitted.sample(50, random_state=3)
    second, second_components = fitted.sample(50, random_state=3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first_components, second_components)
    assert first.shape == (50, 3)


def test_sample_comes_shuffled_not_grouped_by_component(fitted):
    _, components = fitted.sample(300, random_state=0)
    assert not np.all(np.diff(components) >= 0)
    assert set(components) <= set(range(fitted.n_components))


def test_samples_follow_the_mixture(fitted):
    X, components = fitted.sample(40000, random_state=1)
    np.testing.assert_allclose(np.bincount(components) / len(X), fitted.weights, atol=0.01)
    for k in range(fitted.n_components):
        np.testing.assert_allclose(X[components == k].mean(axis=0), fitted.means[k], atol=0.1)


def test_scoring_data_of_another_width_is_invalid_data(fitted):
    with pytest.raises(InvalidDataError, match="3"):
        fitted.score_samples(np.zeros((4, 2)))


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(fitted):
    X = make_blobs(7, 200, 3, 3, spread=6.0)
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels, proba_again = fitted.predict_with_proba(X)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    np.testing.assert_array_equal(proba_again, proba)
