"""scikit-learn's ``GaussianMixture``, fitted by this package's EM core.

:class:`GaussianMixture` is a scikit-learn estimator (``BaseEstimator``,
``DensityMixin``, ``get_params``/``set_params``/``clone``, tags, scikit-learn's
input validation, ``NotFittedError`` and ``ConvergenceWarning``) with the
constructor, methods and fitted attributes of
``sklearn.mixture.GaussianMixture``. The EM iterations are
:func:`~service.gmm.fit_mixture`'s; from the same start they give
scikit-learn's answer. Two additions: ``sample_weight`` (keyword-only) in
``fit``, ``fit_predict`` and ``score``, and ``dtype``.

This is the one module of :mod:`service.gmm` that imports scikit-learn, and
nothing else in the package imports it: ``service.gmm.GaussianMixture`` loads
it on first use, so the core and the service work without scikit-learn.

The sections follow ``fit``: parameter checks, initial-value checks, the fit
itself, then the questions a fitted mixture answers.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_sample_weight
from .covariance import COVARIANCE_TYPES, n_parameters, precisions_cholesky_from_precisions
from .em import FitConfig, FitProgress, estimate_parameters, fit_mixture
from .initialization import INIT_METHODS, initial_responsibilities
from .mixture import MixtureParameters

__all__ = ["GaussianMixture"]

_DTYPES = {None: None, "float64": np.float64, "float32": np.float32}

# --- parameter checks (in fit, as scikit-learn does) ---------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


_CONSTRAINTS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "n_components": ("an int in the range [1, inf)", lambda v: _is_int(v) and v >= 1),
    "covariance_type": (
        f"a str among {set(COVARIANCE_TYPES)}",
        lambda v: isinstance(v, str) and v in COVARIANCE_TYPES,
    ),
    "tol": ("a float in the range [0.0, inf)", lambda v: _is_real(v) and v >= 0),
    "reg_covar": ("a float in the range [0.0, inf)", lambda v: _is_real(v) and v >= 0),
    "max_iter": ("an int in the range [0, inf)", lambda v: _is_int(v) and v >= 0),
    "n_init": ("an int in the range [1, inf)", lambda v: _is_int(v) and v >= 1),
    "init_params": (
        f"a str among {set(INIT_METHODS)}",
        lambda v: isinstance(v, str) and v in INIT_METHODS,
    ),
    "random_state": (
        "an int in the range [0, 4294967295], an instance of "
        "'numpy.random.RandomState' or 'numpy.random.Generator', or None",
        lambda v: (
            v is None
            or (_is_int(v) and 0 <= v <= 2**32 - 1)
            or isinstance(v, np.random.RandomState | np.random.Generator)
        ),
    ),
    "warm_start": ("an instance of 'bool'", lambda v: isinstance(v, bool | np.bool_)),
    "verbose": ("an int or a bool", lambda v: isinstance(v, Integral)),
    "verbose_interval": ("an int in the range [1, inf)", lambda v: _is_int(v) and v >= 1),
    "dtype": ("'float64', 'float32' or None", lambda v: v in _DTYPES),
}


def _check_parameters(estimator: GaussianMixture) -> None:
    """Raise ValueError, worded as scikit-learn's, for the first invalid parameter."""
    for name, (expected, valid) in _CONSTRAINTS.items():
        value = getattr(estimator, name)
        if not valid(value):
            raise ValueError(
                f"The {name!r} parameter of {type(estimator).__name__} must be "
                f"{expected}. Got {value!r} instead."
            )


# --- initial values (scikit-learn's checks and messages) -----------------------


def _as_float_array(value: object, dtype: np.dtype) -> np.ndarray:
    return np.array(value, dtype=dtype)


def _check_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if array.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, but got {array.shape}"
        )


def _check_weights(weights: object, n_components: int, dtype: np.dtype) -> np.ndarray:
    weights = _as_float_array(weights, dtype)
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # The labels are scikit-learn's, which give the minimum as "max value"
        # and the maximum as "min value"; kept so code matching them works.
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not abs(1.0 - float(np.sum(weights))) <= atol:
        raise ValueError(
            "The parameter 'weights' should be normalized, "
            f"but got sum(weights) = {np.sum(weights):.5f}"
        )
    return weights


def _check_means(means: object, n_components: int, n_features: int, dtype: np.dtype) -> np.ndarray:
    means = _as_float_array(means, dtype)
    _check_shape(means, (n_components, n_features), "means")
    return means


def _check_matrices(precisions: np.ndarray, covariance_type: str) -> None:
    for matrix in np.reshape(precisions, (-1, *precisions.shape[-2:])):
        if not (
            np.allclose(matrix, matrix.T) and np.all(np.linalg.eigvalsh(matrix.astype(float)) > 0)
        ):
            raise ValueError(
                f"'{covariance_type} precision' should be symmetric, positive-definite"
            )


def _check_positive(precisions: np.ndarray, covariance_type: str) -> None:
    if np.any(precisions <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")


_PRECISION_SHAPES: dict[str, Callable[[int, int], tuple[int, ...]]] = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k,),
}

_PRECISION_CHECKS: dict[str, Callable[[np.ndarray, str], None]] = {
    "full": _check_matrices,
    "tied": _check_matrices,
    "diag": _check_positive,
    "spherical": _check_positive,
}


def _check_precisions(
    precisions: object, covariance_type: str, n_components: int, n_features: int, dtype: np.dtype
) -> np.ndarray:
    precisions = _as_float_array(precisions, dtype)
    shape = _PRECISION_SHAPES[covariance_type](n_components, n_features)
    _check_shape(precisions, shape, f"{covariance_type} precision")
    _PRECISION_CHECKS[covariance_type](precisions, covariance_type)
    return precisions


# --- fitted attributes -----------------------------------------------------------


def _precisions_full(u: np.ndarray) -> np.ndarray:
    return u @ np.transpose(u, (0, 2, 1))


def _precisions_tied(u: np.ndarray) -> np.ndarray:
    return u @ u.T


def _precisions_elementwise(u: np.ndarray) -> np.ndarray:
    return u**2


_PRECISIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": _precisions_full,
    "tied": _precisions_tied,
    "diag": _precisions_elementwise,
    "spherical": _precisions_elementwise,
}


def _seed(random_state: object) -> int | np.random.Generator | None:
    """What :func:`numpy.random.default_rng` takes, from scikit-learn's ``random_state``.

    A ``RandomState`` gives a seed drawn from it, so it advances between fits
    as scikit-learn's does and two fits with the same instance differ.
    """
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return random_state  # type: ignore[return-value]


class _VerboseReport:
    """Prints scikit-learn's ``verbose`` lines from the fit's progress callback."""

    def __init__(self, estimator: GaussianMixture, first_previous: float) -> None:
        self.verbose = int(estimator.verbose)
        self.interval = int(estimator.verbose_interval)
        self.tol = float(estimator.tol)
        self.max_iter = int(estimator.max_iter)
        self.first_previous = first_previous
        self.previous = first_previous
        self.init_start = self.iter_start = time.time()

    def __call__(self, progress: FitProgress) -> bool:
        if progress.iteration == 1:
            print(f"Initialization {progress.init}")
            self.previous = self.first_previous
            self.init_start = self.iter_start = time.time()
        change = progress.lower_bound - self.previous
        self.previous = progress.lower_bound
        if progress.iteration % self.interval == 0:
            if self.verbose == 1:
                print(f"  Iteration {progress.iteration}")
            else:
                now = time.time()
                print(
                    f"  Iteration {progress.iteration}\t time lapse "
                    f"{now - self.iter_start:.5f}s\t ll change {change:.5f}"
                )
                self.iter_start = now
        converged = abs(change) < self.tol
        if converged or progress.iteration == self.max_iter:
            outcome = "converged" if converged else "did not converge"
            if self.verbose == 1:
                print(f"Initialization {outcome}.")
            else:
                print(
                    f"Initialization {outcome}. time lapse {time.time() - self.init_start:.5f}s"
                    f"\t lower bound {progress.lower_bound:.5f}."
                )
        return False


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM: a drop-in for ``sklearn.mixture.GaussianMixture``.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
        EM iterations per initialisation; 0 keeps the initial parameters.
    n_init : int, default=1
        Initialisations; the best lower bound wins.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Shape by ``covariance_type``: (n_components, n_features, n_features)
        for 'full', (n_features, n_features) for 'tied', (n_components,
        n_features) for 'diag', (n_components,) for 'spherical'.
    random_state : int, RandomState, Generator or None, default=None
    warm_start : bool, default=False
        Each further ``fit`` continues from the fitted parameters, and its
        first change is measured from the previous ``lower_bound_``.
    verbose : int, default=0
    verbose_interval : int, default=10
    dtype : {'float64', 'float32'} or None, default=None
        Precision of the fit and of the fitted attributes. None follows the
        data, as scikit-learn does: float32 data give float32 attributes,
        anything else float64.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_, precisions_, precisions_cholesky_ : ndarray
        Shape by ``covariance_type``, as ``precisions_init``.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean log-likelihood of the training data at the last E-step of the
        best initialisation.
    lower_bounds_ : list of float
        ``lower_bound_`` after every iteration of the best initialisation.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        dtype: str | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype

    # --- fitting -------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None, *, sample_weight: Any = None) -> GaussianMixture:
        """Estimate the parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
            Accepted for the API's sake (``Pipeline.fit(X, y)``).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample; integer weights fit as the rows
            repeated.

        Returns
        -------
        self : GaussianMixture
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X: Any, y: Any = None, *, sample_weight: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        X = self._fit(X, sample_weight)
        return self._mixture().predict(X)

    def _fit(self, X: Any, sample_weight: Any) -> np.ndarray:
        """Fit and return ``X`` as validated."""
        _check_parameters(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n_samples, n_features = X.shape
        if n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, n_samples = {n_samples}"
            )
        dtype = np.dtype(_DTYPES[self.dtype] or X.dtype)
        init = self._checked_initial_values(n_features, dtype)
        continuing = self.warm_start and hasattr(self, "converged_")
        config = FitConfig(
            n_components=int(self.n_components),
            covariance_type=self.covariance_type,
            tol=float(self.tol),
            reg_covar=float(self.reg_covar),
            max_iter=max(int(self.max_iter), 1),
            n_init=int(self.n_init),
            init_params=self.init_params,
            random_state=_seed(self.random_state),  # type: ignore[arg-type]
            dtype=dtype.name,
        )
        if self.max_iter == 0:  # initialise (or keep a warm start's parameters), no EM
            parameters = (
                self._mixture()
                if continuing
                else self._initial_parameters(X, sample_weight, config, init)
            )
            self._set_fitted(parameters, dtype, False, 0, -np.inf, [])
            return X
        previous_lower_bound = float(self.lower_bound_) if continuing else -np.inf
        result = fit_mixture(
            X,
            config,
            sample_weight=sample_weight,
            **init,
            warm_start=self._mixture() if continuing else None,
            warm_start_lower_bound=previous_lower_bound,
            callback=_VerboseReport(self, previous_lower_bound) if self.verbose else None,
        )
        if not result.converged:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_fitted(
            result.parameters,
            dtype,
            result.converged,
            result.n_iter,
            result.lower_bound,
            list(result.lower_bound_history),
        )
        return X

    def _checked_initial_values(self, n_features: int, dtype: np.dtype) -> dict[str, Any]:
        k = int(self.n_components)
        return {
            "weights_init": None
            if self.weights_init is None
            else _check_weights(self.weights_init, k, dtype),
            "means_init": None
            if self.means_init is None
            else _check_means(self.means_init, k, n_features, dtype),
            "precisions_init": None
            if self.precisions_init is None
            else _check_precisions(
                self.precisions_init, self.covariance_type, k, n_features, dtype
            ),
        }

    def _initial_parameters(
        self, X: np.ndarray, sample_weight: Any, config: FitConfig, init: dict[str, Any]
    ) -> MixtureParameters:
        """``max_iter=0``: the initialisation alone, by the methods the fit starts with."""
        rng = np.random.default_rng(config.random_state)
        weights = check_sample_weight(sample_weight, len(X))
        resp = initial_responsibilities(
            X.astype(np.float64), config.n_components, config.init_params, weights, rng
        )
        start = estimate_parameters(
            X,
            resp,
            covariance_type=config.covariance_type,
            reg_covar=config.reg_covar,
            sample_weight=sample_weight,
        )
        means = start.means if init["means_init"] is None else init["means_init"]
        weights = start.weights if init["weights_init"] is None else init["weights_init"]
        if init["precisions_init"] is None:
            return MixtureParameters(
                config.covariance_type, weights, means, start.covariances, start.precisions_cholesky
            )
        return MixtureParameters.from_precisions_cholesky(
            weights,
            means,
            precisions_cholesky_from_precisions(init["precisions_init"], config.covariance_type),
            config.covariance_type,
        )

    def _set_fitted(
        self,
        parameters: MixtureParameters,
        dtype: np.dtype,
        converged: bool,
        n_iter: int,
        lower_bound: float,
        lower_bounds: list[float],
    ) -> None:
        self.weights_ = parameters.weights.astype(dtype)
        self.means_ = parameters.means.astype(dtype)
        self.covariances_ = parameters.covariances.astype(dtype)
        self.precisions_cholesky_ = parameters.precisions_cholesky.astype(dtype)
        self.precisions_ = _PRECISIONS[self.covariance_type](parameters.precisions_cholesky).astype(
            dtype
        )
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.lower_bound_ = float(lower_bound)
        self.lower_bounds_ = lower_bounds

    # --- what a fitted mixture answers ----------------------------------------------

    def _mixture(self) -> MixtureParameters:
        """The fitted attributes as they are now (they may have been assigned)."""
        check_is_fitted(self)
        return MixtureParameters(
            self.covariance_type,
            self.weights_,
            self.means_,
            self.covariances_,
            self.precisions_cholesky_,
        )

    def _validated(self, X: Any) -> tuple[MixtureParameters, np.ndarray, type]:
        """The mixture, ``X`` checked against the fit, and the dtype answers take."""
        mixture = self._mixture()
        X = validate_data(self, X, reset=False)
        both_float32 = X.dtype == np.float32 and self.means_.dtype == np.float32
        return mixture, X, np.float32 if both_float32 else np.float64

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
        """
        mixture, X, dtype = self._validated(X)
        return mixture.score_samples(X).astype(dtype, copy=False)

    def score(self, X: Any, y: Any = None, *, sample_weight: Any = None) -> float:
        """Mean (weighted) log-likelihood of the samples; ``y`` is ignored."""
        log_likelihood = self.score_samples(X)
        weights = check_sample_weight(sample_weight, len(log_likelihood))
        return float(np.average(log_likelihood, weights=weights))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,)."""
        mixture, X, _ = self._validated(X)
        return mixture.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of each component, shape (n_samples, n_components)."""
        mixture, X, dtype = self._validated(X)
        return mixture.predict_proba(X).astype(dtype, copy=False)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw from the fitted mixture (``random_state`` seeds the draw).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            In random order, not grouped by component as scikit-learn's are.
        y : ndarray of shape (n_samples,)
            The component that drew each sample.
        """
        mixture = self._mixture()
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling requires at "
                "least one sample."
            )
        return mixture.sample(int(n_samples), _seed(self.random_state))  # type: ignore[arg-type]

    def _n_parameters(self) -> int:
        """Free parameters of the model (scikit-learn's private name, kept for its tests)."""
        check_is_fitted(self)
        return n_parameters(int(self.n_components), self.means_.shape[1], self.covariance_type)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        mixture, X, _ = self._validated(X)
        return float(mixture.bic(X))

    def aic(self, X: Any) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        mixture, X, _ = self._validated(X)
        return float(mixture.aic(X))
