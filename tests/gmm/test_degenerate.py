"""Degenerate input gets a clear, typed error, never a crash or NaN parameters."""

import numpy as np
import pytest

from service.gmm import (
    CollapsedComponentError,
    FitConfig,
    InvalidDataError,
    InvalidParameterError,
    NumericalError,
    fit_mixture,
)


def _assert_finite(result):
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        assert np.all(np.isfinite(getattr(result.parameters, name))), name


def test_fewer_samples_than_components_is_invalid_data():
    with pytest.raises(InvalidDataError, match="n_components=3"):
        fit_mixture(np.zeros((2, 2)), FitConfig(3))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_invalid_data_naming_the_row(bad):
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[7, 1] = bad
    with pytest.raises(InvalidDataError, match="row 7"):
        fit_mixture(X, FitConfig(2))


@pytest.mark.parametrize("X", [np.zeros((0, 2)), np.zeros(5), [[1.0, 2.0], [3.0]], [["a", "b"]]])
def test_malformed_data_is_invalid_data(X):
    with pytest.raises(InvalidDataError):
        fit_mixture(X, FitConfig(1))


def test_constant_column_fits_with_reg_covar():
    X = np.random.default_rng(0).normal(size=(200, 3))
    X[:, 1] = 4.0
    result = fit_mixture(X, FitConfig(2, random_state=0))
    _assert_finite(result)


def test_duplicated_points_fit_with_reg_covar():
    X = np.repeat(np.random.default_rng(0).normal(size=(5, 2)), 40, axis=0)
    result = fit_mixture(X, FitConfig(3, random_state=0))
    _assert_finite(result)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_component_collapsing_onto_one_point_explains_and_suggests_reg_covar(covariance_type):
    X = np.vstack([[[50.0, 50.0]], np.random.default_rng(0).normal(size=(50, 2))])
    config = FitConfig(2, covariance_type, reg_covar=0.0, init_params="random_from_data")
    means_init = np.array([[50.0, 50.0], [0.0, 0.0]])
    with pytest.raises(CollapsedComponentError, match="reg_covar") as caught:
        fit_mixture(
            X,
            config,
            means_init=means_init,
            weights_init=[0.5, 0.5],
            precisions_init=np.array([np.eye(2)] * 2)
            if covariance_type == "full"
            else (np.ones((2, 2)) if covariance_type == "diag" else np.ones(2)),
        )
    assert caught.value.component == 0


def test_values_near_overflow_are_a_numerical_error_not_nan():
    X = np.random.default_rng(0).normal(size=(50, 2)) * 1e160
    with pytest.raises(NumericalError, match="scale the data"):
        fit_mixture(X, FitConfig(2, random_state=0))


def test_large_but_representable_values_fit():
    X = np.random.default_rng(0).normal(size=(200, 2)) * 1e100 + 1e101
    result = fit_mixture(X, FitConfig(2, random_state=0))
    _assert_finite(result)


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_components", 0),
        ("covariance_type", "banana"),
        ("tol", -1.0),
        ("reg_covar", -1e-3),
        ("max_iter", 0),
        ("n_init", 0),
        ("init_params", "magic"),
        ("dtype", "float16"),
    ],
)
def test_out_of_range_config_is_an_invalid_parameter(field, value):
    with pytest.raises(InvalidParameterError, match=field):
        FitConfig(**{field: value})


def test_initial_parameters_of_the_wrong_shape_are_rejected():
    X = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(InvalidParameterError, match="means"):
        fit_mixture(X, FitConfig(2), means_init=np.zeros((3, 2)))


@pytest.mark.parametrize("weights", [[1.0] * 9 + [-1.0], [np.nan] * 10, [0.0] * 10, [1.0] * 3])
def test_bad_sample_weights_are_invalid_data(weights):
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(InvalidDataError, match="sample_weight"):
        fit_mixture(X, FitConfig(2), sample_weight=weights)
