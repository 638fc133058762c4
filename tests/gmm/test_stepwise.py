"""Stepwise EM: the statistics a mixture stands for, and updates with new rows."""

from __future__ import annotations

import numpy as np
import pytest

from service.gmm import (
    COVARIANCE_TYPES,
    FitConfig,
    InvalidDataError,
    InvalidParameterError,
    MixtureParameters,
    estimate_parameters,
    fit_mixture,
)
from service.gmm.chunked import ArrayChunk, ChunkedData
from service.gmm.covariance import SufficientStatistics
from service.gmm.kernels import accumulate_statistics, tied_second_moment
from service.gmm.stepwise import implied_statistics, update_mixture, update_mixture_chunked

from .conftest import make_blobs

REG = 1e-3
ARRAYS = ("weights", "means", "covariances")


def _soft_responsibilities(n_samples: int, n_components: int, seed: int = 1) -> np.ndarray:
    resp = np.random.default_rng(seed).uniform(size=(n_samples, n_components)) ** 4
    return resp / resp.sum(axis=1, keepdims=True)


@pytest.fixture
def data() -> np.ndarray:
    return make_blobs(0, 900, 3, 3, spread=5.0)


def _fitted(X: np.ndarray, covariance_type: str) -> tuple[MixtureParameters, np.ndarray]:
    resp = _soft_responsibilities(len(X), 3)
    return estimate_parameters(X, resp, covariance_type=covariance_type, reg_covar=REG), resp


def _assert_same(a: MixtureParameters, b: MixtureParameters, atol: float) -> None:
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=atol)


# --- implied statistics -------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_implied_statistics_equal_the_statistics_the_mixture_was_estimated_from(
    data: np.ndarray, covariance_type: str
) -> None:
    params, resp = _fitted(data, covariance_type)
    implied = implied_statistics(params, len(data), reg_covar=REG)
    actual = accumulate_statistics(data, None, resp, covariance_type)
    if covariance_type == "tied":
        actual.second_moment = tied_second_moment(data, None)
    np.testing.assert_allclose(implied.resp_sum, actual.resp_sum, rtol=1e-10)
    np.testing.assert_allclose(implied.weighted_x, actual.weighted_x, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(implied.second_moment, actual.second_moment, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_implied_statistics_scale_with_n_effective(data: np.ndarray, covariance_type: str) -> None:
    params, _ = _fitted(data, covariance_type)
    one = implied_statistics(params, 1.0)
    many = implied_statistics(params, 250.0)
    np.testing.assert_allclose(many.second_moment, 250.0 * one.second_moment, rtol=1e-12)
    assert many.resp_sum.sum() == pytest.approx(250.0)


def test_implied_statistics_around_a_center_shift_the_means(data: np.ndarray) -> None:
    params, _ = _fitted(data, "full")
    center = np.array([1.0, -2.0, 3.0])
    stats = implied_statistics(params, 10.0, center=center)
    np.testing.assert_allclose(
        stats.weighted_x / stats.resp_sum[:, None], params.means - center, atol=1e-12
    )


def test_implied_statistics_are_sufficient_statistics(data: np.ndarray) -> None:
    params, _ = _fitted(data, "diag")
    assert isinstance(implied_statistics(params, 3.0), SufficientStatistics)


# --- pooling: the default rate is the M-step of old and new together --------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_default_rate_pools_old_and_new_statistics_exactly(
    data: np.ndarray, covariance_type: str
) -> None:
    old, new = data[:600], data[600:]
    params, resp = _fitted(old, covariance_type)
    updated = update_mixture(params, new, n_effective=len(old), reg_covar=REG)
    pooled = estimate_parameters(
        data,
        np.vstack([resp, params.predict_proba(new)]),
        covariance_type=covariance_type,
        reg_covar=REG,
    )
    _assert_same(updated.parameters, pooled, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_learning_rate_one_is_one_em_step_on_the_new_rows(
    data: np.ndarray, covariance_type: str
) -> None:
    params, _ = _fitted(data[:600], covariance_type)
    new = data[600:]
    updated = update_mixture(params, new, n_effective=600, learning_rate=1.0, reg_covar=REG)
    config = FitConfig(n_components=3, covariance_type=covariance_type, reg_covar=REG, max_iter=1)
    one_step = fit_mixture(new, config, warm_start=params).parameters
    _assert_same(updated.parameters, one_step, atol=1e-10)


def test_default_rate_is_new_rows_over_all_rows(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=600, reg_covar=REG)
    assert updated.learning_rate == pytest.approx(300 / 900)


def test_the_same_update_gives_bit_identical_parameters(data: np.ndarray) -> None:
    params, _ = _fitted(data[:300], "full")
    first = update_mixture(params, data[300:600], n_effective=300, reg_covar=REG)
    again = update_mixture(params, data[300:600], n_effective=300.0, reg_covar=REG)
    _assert_same(first.parameters, again.parameters, atol=0)


# --- forgetting ---------------------------------------------------------------------


def test_means_follow_a_shifted_distribution_over_repeated_updates() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    params = fit_mixture(X, FitConfig(n_components=1, random_state=0)).parameters
    target = np.array([4.0, -3.0])
    distances = []
    n_effective = 2000.0
    for _ in range(30):
        batch = rng.normal(size=(200, 2)) + target
        step = update_mixture(params, batch, n_effective=n_effective, learning_rate=0.2)
        params, n_effective = step.parameters, step.n_effective
        distances.append(np.linalg.norm(params.means[0] - target))
    assert distances[-1] < 0.1
    assert distances[-1] < distances[0] < np.linalg.norm(target)


def test_a_larger_learning_rate_follows_drift_faster() -> None:
    rng = np.random.default_rng(1)
    params = fit_mixture(rng.normal(size=(1000, 2)), FitConfig(n_components=1)).parameters
    batch = rng.normal(size=(100, 2)) + 5.0
    slow = update_mixture(params, batch, n_effective=1000, learning_rate=0.05).parameters
    fast = update_mixture(params, batch, n_effective=1000, learning_rate=0.5).parameters
    assert np.linalg.norm(fast.means - 5.0) < np.linalg.norm(slow.means - 5.0)


def test_pooling_follows_drift_more_slowly_than_forgetting() -> None:
    rng = np.random.default_rng(2)
    params = fit_mixture(rng.normal(size=(5000, 1)), FitConfig(n_components=1)).parameters
    pooled, forgetting = params, params
    n_pooled = n_forgetting = 5000.0
    for _ in range(10):
        batch = rng.normal(size=(100, 1)) + 3.0
        a = update_mixture(pooled, batch, n_effective=n_pooled)
        b = update_mixture(forgetting, batch, n_effective=n_forgetting, learning_rate=0.3)
        pooled, n_pooled = a.parameters, a.n_effective
        forgetting, n_forgetting = b.parameters, b.n_effective
    assert abs(forgetting.means[0, 0] - 3.0) < abs(pooled.means[0, 0] - 3.0)


def test_the_covariance_grows_when_new_rows_are_spread_wider() -> None:
    rng = np.random.default_rng(3)
    params = fit_mixture(rng.normal(size=(1000, 2)), FitConfig(n_components=1)).parameters
    wide = rng.normal(size=(1000, 2)) * 3.0
    updated = update_mixture(params, wide, n_effective=1000, learning_rate=0.5).parameters
    assert np.all(np.diag(updated.covariances[0]) > 3.0)


# --- n_effective bookkeeping ---------------------------------------------------------


def test_pooled_update_adds_the_new_rows_to_n_effective(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=600, reg_covar=REG)
    assert updated.n_effective == pytest.approx(900)
    assert updated.n_samples == 300


def test_forgetting_update_sets_n_effective_to_batch_over_rate(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=600, learning_rate=0.25)
    assert updated.n_effective == pytest.approx(300 / 0.25)
    assert updated.learning_rate == 0.25


def test_learning_rate_one_forgets_everything_but_the_new_rows(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=600, learning_rate=1.0)
    assert updated.n_effective == 300


def test_weights_still_sum_to_one(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "spherical")
    updated = update_mixture(params, data[600:], n_effective=600, learning_rate=0.4)
    assert updated.parameters.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_log_likelihood_is_the_new_rows_mean_under_the_old_parameters(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=600, reg_covar=REG)
    assert updated.log_likelihood == pytest.approx(params.score(data[600:]), rel=1e-10)


def test_update_does_not_write_to_the_callers_rows(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    new = data[600:].copy()
    update_mixture(params, new, n_effective=600)
    np.testing.assert_array_equal(new, data[600:])


# --- dtypes ------------------------------------------------------------------------------


def test_float32_rows_give_the_answer_of_the_same_values_in_float64(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    new32 = data[600:].astype(np.float32)
    a = update_mixture(params, new32, n_effective=600, reg_covar=REG).parameters
    b = update_mixture(params, new32.astype(np.float64), n_effective=600, reg_covar=REG).parameters
    _assert_same(a, b, atol=0)


def test_float32_rows_update_close_to_the_float64_ones(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "diag")
    a = update_mixture(params, data[600:].astype(np.float32), n_effective=600).parameters
    b = update_mixture(params, data[600:], n_effective=600).parameters
    _assert_same(a, b, atol=1e-5)


# --- bad arguments ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan"), True])
def test_learning_rate_outside_zero_one_is_refused(data: np.ndarray, rate: float) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        update_mixture(params, data[600:], n_effective=600, learning_rate=rate)


@pytest.mark.parametrize("n_effective", [0, -5, float("inf"), float("nan")])
def test_n_effective_must_be_positive_and_finite(data: np.ndarray, n_effective: float) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidParameterError, match="n_effective"):
        update_mixture(params, data[600:], n_effective=n_effective)


def test_n_effective_may_be_unknown_with_a_learning_rate(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    updated = update_mixture(params, data[600:], n_effective=None, learning_rate=0.5)
    assert updated.n_effective == pytest.approx(600)


def test_n_effective_is_needed_for_the_default_learning_rate(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidParameterError, match="n_effective is needed"):
        update_mixture(params, data[600:], n_effective=None)


def test_negative_reg_covar_is_refused(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidParameterError, match="reg_covar"):
        update_mixture(params, data[600:], n_effective=600, reg_covar=-1.0)


def test_rows_of_another_width_are_refused(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidDataError, match="features"):
        update_mixture(params, data[600:, :2], n_effective=600)


def test_rows_with_nan_are_refused_naming_the_row(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    new = data[600:].copy()
    new[7, 1] = np.nan
    with pytest.raises(InvalidDataError, match="row 7"):
        update_mixture(params, new, n_effective=600)


def test_params_must_be_mixture_parameters(data: np.ndarray) -> None:
    with pytest.raises(InvalidParameterError, match="MixtureParameters"):
        update_mixture({"weights": [1.0]}, data, n_effective=10)  # type: ignore[arg-type]


# --- new rows held as chunks ----------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("learning_rate", [None, 0.3])
def test_an_update_from_chunks_equals_the_update_from_the_whole_matrix(
    data: np.ndarray, covariance_type: str, learning_rate: float | None
) -> None:
    params, _ = _fitted(data[:600], covariance_type)
    new = data[600:]
    options = dict(n_effective=600, learning_rate=learning_rate, reg_covar=REG)
    whole = update_mixture(params, new, **options)
    chunked = update_mixture_chunked(params, ChunkedData.from_array(new, 70), **options)
    _assert_same(chunked.parameters, whole.parameters, atol=1e-10)
    assert (chunked.n_effective, chunked.learning_rate, chunked.n_samples) == pytest.approx(
        (whole.n_effective, whole.learning_rate, whole.n_samples), rel=1e-12
    )
    assert chunked.log_likelihood == pytest.approx(whole.log_likelihood, rel=1e-12)


def test_chunks_of_another_width_are_refused(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "full")
    with pytest.raises(InvalidDataError, match="features"):
        update_mixture_chunked(
            params, ChunkedData.from_array(data[600:, :2], 70), n_effective=600, reg_covar=REG
        )


def test_chunks_holding_nan_are_refused(data: np.ndarray) -> None:
    params, _ = _fitted(data[:600], "diag")
    new = data[600:].copy()
    new[150, 1] = np.nan
    chunks = ChunkedData([ArrayChunk(new[:100]), ArrayChunk(new[100:])], [100, 200], 3)
    with pytest.raises(InvalidDataError, match="NaN"):
        update_mixture_chunked(params, chunks, n_effective=600, reg_covar=REG)
