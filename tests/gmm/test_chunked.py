"""The out-of-core fit (service.gmm.chunked) against the in-memory fit."""

import numpy as np
import pytest
from scipy import stats

from service.gmm import (
    COVARIANCE_TYPES,
    FitCancelled,
    FitConfig,
    InvalidDataError,
    fit_mixture,
)
from service.gmm.chunked import ArrayChunk, ChunkedData, _sample_plan, fit_chunked

from .conftest import assert_same_fit, make_blobs, precisions_of, random_start


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(21, 2503, 4, 3, spread=5.0)


def given_start(X, covariance_type):
    start = random_start(X, 3, covariance_type)
    return dict(
        weights_init=start.weights, means_init=start.means, precisions_init=precisions_of(start)
    )


@pytest.mark.parametrize("rows", [97, 1000, 2503])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_out_of_core_fit_equals_the_in_memory_fit_from_the_same_start(blobs, covariance_type, rows):
    config = FitConfig(3, covariance_type, tol=1e-8, max_iter=60)
    init = given_start(blobs, covariance_type)
    expected = fit_mixture(blobs, config, **init)
    actual = fit_chunked(ChunkedData.from_array(blobs, rows), config, **init)
    assert expected.n_iter > 5  # enough iterations for differences to grow
    assert_same_fit(actual, expected)


def test_chunks_read_from_npy_files_fit_like_the_array(blobs, tmp_path):
    paths = []
    for i, start in enumerate(range(0, len(blobs), 700)):
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], blobs[start : start + 700])
    config = FitConfig(3, "full", tol=0.0, max_iter=20)
    init = given_start(blobs, "full")
    data = ChunkedData.from_npy(paths)
    assert list(data.chunk_rows) == [700, 700, 700, 403]
    assert_same_fit(fit_chunked(data, config, **init), fit_mixture(blobs, config, **init))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_weights_are_sliced_per_chunk_like_the_in_memory_fit(blobs, covariance_type):
    weights = np.random.default_rng(3).uniform(0.0, 3.0, size=len(blobs))
    config = FitConfig(3, covariance_type, tol=0.0, max_iter=25)
    init = given_start(blobs, covariance_type)
    expected = fit_mixture(blobs, config, sample_weight=weights, **init)
    actual = fit_chunked(ChunkedData.from_array(blobs, 333), config, sample_weight=weights, **init)
    assert_same_fit(actual, expected)


def test_float32_fit_agrees_with_the_in_memory_float32_fit_to_float32_rounding(blobs):
    # The centre is taken from the float64 rows here, from float32 rows in memory.
    config = FitConfig(3, "full", tol=0.0, max_iter=10, dtype="float32")
    init = given_start(blobs, "full")
    expected = fit_mixture(blobs, config, **init)
    actual = fit_chunked(ChunkedData.from_array(blobs, 512), config, **init)
    assert_same_fit(actual, expected, tolerance=1e-3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_sample_as_big_as_the_data_initialises_like_the_in_memory_fit(blobs, covariance_type):
    config = FitConfig(3, covariance_type, random_state=5)
    expected = fit_mixture(blobs, config)
    actual = fit_chunked(ChunkedData.from_array(blobs, 600), config, init_sample_size=len(blobs))
    assert_same_fit(actual, expected)


def test_initialising_from_a_small_sample_reaches_the_in_memory_optimum():
    X = make_blobs(8, 20_000, 3, 4, spread=8.0)
    config = FitConfig(4, "full", random_state=0, tol=1e-6)
    expected = fit_mixture(X, config)
    actual = fit_chunked(ChunkedData.from_array(X, 3000), config, init_sample_size=500)
    assert actual.converged
    np.testing.assert_allclose(actual.lower_bound, expected.lower_bound, rtol=1e-6)


def test_the_sample_plan_draws_the_requested_number_of_distinct_rows_from_every_chunk():
    chunk_rows = [40, 0, 7, 120, 33]
    plan = _sample_plan(chunk_rows, 50, np.random.default_rng(0))
    assert sum(len(rows) for rows in plan) == 50
    for rows, n in zip(plan, chunk_rows, strict=True):
        assert len(np.unique(rows)) == len(rows) and np.all((rows >= 0) & (rows < n))


def test_the_sample_plan_includes_every_row_equally_often():
    chunk_rows = [13, 101, 2, 84]
    rng = np.random.default_rng(1)
    counts = np.zeros(sum(chunk_rows))
    offsets = np.concatenate([[0], np.cumsum(chunk_rows)])
    for _ in range(3000):
        for i, rows in enumerate(_sample_plan(chunk_rows, 20, rng)):
            counts[offsets[i] + rows] += 1
    assert stats.chisquare(counts).pvalue > 1e-4


def test_callback_hears_the_in_memory_lower_bounds_and_can_stop_the_fit(blobs):
    config = FitConfig(3, "diag", tol=0.0, max_iter=50)
    init = given_start(blobs, "diag")
    expected = fit_mixture(blobs, config, **init).lower_bound_history[:4]
    heard = []

    def stop_at_fourth(progress):
        heard.append(progress.lower_bound)
        return progress.iteration == 4

    with pytest.raises(FitCancelled):
        fit_chunked(ChunkedData.from_array(blobs, 400), config, callback=stop_at_fourth, **init)
    np.testing.assert_allclose(heard, expected, rtol=1e-12)


def test_a_chunk_of_the_wrong_shape_is_invalid_data(blobs):
    data = ChunkedData([ArrayChunk(blobs[:100]), ArrayChunk(blobs[100:150])], [100, 60], 4)
    with pytest.raises(InvalidDataError, match="chunk 1 has shape"):
        fit_chunked(data, FitConfig(2))


def test_nan_in_a_chunk_is_invalid_data(blobs):
    X = blobs.copy()
    X[2000, 1] = np.nan
    with pytest.raises(InvalidDataError, match="NaN"):
        fit_chunked(ChunkedData.from_array(X, 500), FitConfig(2))
