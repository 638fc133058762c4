"""Expectation-maximisation for Gaussian mixtures.

The loop follows scikit-learn's ``GaussianMixture.fit`` exactly (the same
initial parameters give the same iterates and the same lower bounds), but each
iteration is one fused pass over the data (see :mod:`.kernels`):

* E-step under the current parameters, giving the mean log-likelihood
  (the "lower bound" of this iteration) and the sufficient statistics;
* M-step from those statistics.

The data are centred once (EM is translation-equivariant) so that the second
moments accumulated from raw sums stay accurate; the means are shifted back at
the end. Sample weights multiply every point's contribution, so integer weights
fit the data with those rows repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_data, check_sample_weight
from .covariance import (
    COVARIANCE_TYPES,
    SufficientStatistics,
    estimate_covariances,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
)
from .errors import (
    CollapsedComponentError,
    FitCancelled,
    InvalidDataError,
    InvalidParameterError,
    NumericalError,
)
from .initialization import INIT_METHODS, initial_responsibilities
from .kernels import ScoringKernel, accumulate_statistics, e_step_statistics, tied_second_moment
from .mixture import MixtureParameters

__all__ = ["FitConfig", "FitProgress", "FitResult", "estimate_parameters", "fit_mixture"]

_EPS = float(np.finfo(np.float64).eps)
_DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass(frozen=True)
class FitConfig:
    """How to fit: scikit-learn's ``GaussianMixture`` parameters and defaults."""

    n_components: int = 1
    covariance_type: str = "full"
    tol: float = 1e-3
    reg_covar: float = 1e-6
    max_iter: int = 100
    n_init: int = 1
    init_params: str = "kmeans"
    random_state: int | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.n_components, int | np.integer) and self.n_components >= 1):
            problems.append(f"n_components must be an integer >= 1; got {self.n_components!r}")
        if self.covariance_type not in COVARIANCE_TYPES:
            problems.append(f"covariance_type must be one of {COVARIANCE_TYPES}")
        if not self.tol >= 0:
            problems.append("tol must be >= 0")
        if not self.reg_covar >= 0:
            problems.append("reg_covar must be >= 0")
        if not (isinstance(self.max_iter, int | np.integer) and self.max_iter >= 1):
            problems.append("max_iter must be an integer >= 1")
        if not (isinstance(self.n_init, int | np.integer) and self.n_init >= 1):
            problems.append("n_init must be an integer >= 1")
        if self.init_params not in INIT_METHODS:
            problems.append(f"init_params must be one of {INIT_METHODS}")
        if self.dtype not in _DTYPES:
            problems.append("dtype must be 'float64' or 'float32'")
        if problems:
            raise InvalidParameterError("; ".join(problems))


@dataclass(frozen=True)
class FitProgress:
    """What the progress callback hears after every EM iteration."""

    init: int
    n_init: int
    iteration: int
    max_iter: int
    lower_bound: float


ProgressCallback = Callable[[FitProgress], Any]


@dataclass(frozen=True)
class FitResult:
    """The outcome of a fit: the best initialisation's parameters and history."""

    parameters: MixtureParameters
    converged: bool
    n_iter: int
    lower_bound: float
    lower_bound_history: list[float] = field(default_factory=list)
    n_samples: int = 0


@dataclass(frozen=True)
class _Start:
    """Initial parameters in centred coordinates."""

    weights: np.ndarray
    means: np.ndarray
    precisions_cholesky: np.ndarray
    covariances: np.ndarray | None = None


def _m_step(
    stats: SufficientStatistics,
    config: FitConfig,
    tied_moment: np.ndarray | None,
    noise_floor: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means, covariances and precision factors from the statistics.

    ``noise_floor`` is the rounding noise of a variance computed from raw second
    moments of the centred data; a component with no spread above it collapsed.
    """
    nk = stats.resp_sum + 10.0 * _EPS
    means = stats.weighted_x / nk[:, None]
    if tied_moment is not None:
        stats = SufficientStatistics(stats.resp_sum, stats.weighted_x, tied_moment)
    covariances = estimate_covariances(stats, nk, means, config.reg_covar, config.covariance_type)
    try:
        precisions_cholesky = precisions_cholesky_from_covariances(
            covariances, config.covariance_type, noise_floor
        )
    except CollapsedComponentError as exc:
        raise CollapsedComponentError(exc.component, config.dtype == "float32") from None
    return nk, means, covariances, precisions_cholesky


def _noise_floor(scale: float) -> float:
    """Rounding noise of a variance computed in float64 from raw moments of data
    whose largest absolute (centred) value is ``scale``."""
    return 16.0 * _EPS * scale**2


def estimate_parameters(
    X: object,
    responsibilities: object,
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    sample_weight: object = None,
) -> MixtureParameters:
    """One M-step: the mixture parameters that given responsibilities imply.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    responsibilities : array-like of shape (n_samples, n_components)
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    reg_covar : float
        Added to the diagonal of each covariance.
    sample_weight : array-like of shape (n_samples,), optional

    Returns
    -------
    MixtureParameters
    """
    X = check_data(X, dtype=np.float64)
    resp = np.asarray(responsibilities, dtype=np.float64)
    if resp.ndim != 2 or resp.shape[0] != X.shape[0]:
        raise InvalidParameterError("responsibilities must have shape (n_samples, n_components)")
    weights = check_sample_weight(sample_weight, len(X))
    config = FitConfig(
        n_components=resp.shape[1], covariance_type=covariance_type, reg_covar=reg_covar
    )
    center = np.average(X, axis=0, weights=weights)
    centred = X - center
    tied = tied_second_moment(centred, weights) if covariance_type == "tied" else None
    stats = accumulate_statistics(centred, weights, resp, covariance_type)
    nk, means, covariances, precisions_cholesky = _m_step(
        stats, config, tied, _noise_floor(float(np.max(np.abs(centred))))
    )
    return MixtureParameters(
        covariance_type, nk / nk.sum(), means + center, covariances, precisions_cholesky
    )


def _check_start(start: dict[str, Any], config: FitConfig, n_features: int) -> None:
    k, d = config.n_components, n_features
    shapes = {
        "full": (k, d, d),
        "tied": (d, d),
        "diag": (k, d),
        "spherical": (k,),
    }
    expected = {"weights": (k,), "means": (k, d), "precisions": shapes[config.covariance_type]}
    for name, value in start.items():
        if value is None:
            continue
        if np.shape(value) != expected[name]:
            raise InvalidParameterError(
                f"initial {name} must have shape {expected[name]}; got {np.shape(value)}"
            )
        if not np.all(np.isfinite(value)):
            raise InvalidParameterError(f"initial {name} must be finite")
    weights = start.get("weights")
    if weights is not None and (
        np.any(np.asarray(weights) < 0) or not np.isclose(np.sum(weights), 1.0)
    ):
        raise InvalidParameterError("initial weights must be non-negative and sum to 1")


def _initial_parameters(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    center: np.ndarray,
    config: FitConfig,
    rng: np.random.Generator,
    tied_moment: np.ndarray | None,
    noise_floor: float,
    weights_init: np.ndarray | None,
    means_init: np.ndarray | None,
    precisions_init: np.ndarray | None,
) -> _Start:
    weights = means = precisions_cholesky = None
    if weights_init is None or means_init is None or precisions_init is None:
        resp = initial_responsibilities(
            X, config.n_components, config.init_params, sample_weight, rng
        )
        stats = accumulate_statistics(X, sample_weight, resp, config.covariance_type)
        nk, means, _, precisions_cholesky = _m_step(stats, config, tied_moment, noise_floor)
        total_weight = len(X) if sample_weight is None else float(sample_weight.sum())
        weights = nk / total_weight
    if weights_init is not None:
        weights = np.asarray(weights_init, dtype=np.float64)
    if means_init is not None:
        means = np.asarray(means_init, dtype=np.float64) - center
    if precisions_init is not None:
        precisions_cholesky = precisions_cholesky_from_precisions(
            precisions_init, config.covariance_type
        )
    return _Start(weights, means, precisions_cholesky)


def fit_mixture(
    X: object,
    config: FitConfig | None = None,
    *,
    sample_weight: object = None,
    weights_init: object = None,
    means_init: object = None,
    precisions_init: object = None,
    warm_start: MixtureParameters | None = None,
    warm_start_lower_bound: float = -np.inf,
    callback: ProgressCallback | None = None,
) -> FitResult:
    """Fit a Gaussian mixture to ``X`` by EM.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    config : FitConfig
        Defaults to ``FitConfig()``.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weight of each sample.
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Shape by ``covariance_type``, as scikit-learn's ``precisions_init``.
    warm_start : MixtureParameters, optional
        Start from these parameters (a single initialisation).
    warm_start_lower_bound : float, optional
        With ``warm_start``: the lower bound the previous fit ended on. The
        first iteration's change is measured from it, so a fit continued one
        iteration at a time can converge (scikit-learn's ``warm_start``).
    callback : callable, optional
        Called with a :class:`FitProgress` after every iteration; a truthy
        return value stops the fit with :class:`FitCancelled`.

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidDataError, InvalidParameterError, CollapsedComponentError,
    NumericalError, FitCancelled
    """
    config = config or FitConfig()
    dtype = _DTYPES[config.dtype]
    original = X
    X = check_data(X, dtype=dtype)
    n_samples, n_features = X.shape
    weights = check_sample_weight(sample_weight, n_samples)
    n_effective = n_samples if weights is None else int(np.count_nonzero(weights))
    if n_effective < config.n_components:
        raise InvalidDataError(
            f"n_components={config.n_components} needs at least as many samples "
            f"(with positive weight); got {n_effective}"
        )
    weights_init, means_init, precisions_init = _checked_start(
        config, n_features, warm_start, weights_init, means_init, precisions_init
    )

    center = np.average(X, axis=0, weights=weights).astype(np.float64)
    # Centre a private copy: the caller's array is never written to, and when
    # check_data already copied (a list, another dtype) that copy is reused.
    if isinstance(original, np.ndarray) and np.shares_memory(X, original):
        centred = X - center.astype(dtype)
    else:
        centred = X
        centred -= center.astype(dtype)
    del X
    scale = _checked_scale(float(np.max(np.abs(centred))), config, n_features)
    tied_moment = tied_second_moment(centred, weights) if config.covariance_type == "tied" else None
    noise_floor = _noise_floor(scale)
    rng = np.random.default_rng(config.random_state)

    def statistics(kernel: ScoringKernel, precise: bool) -> SufficientStatistics:
        return e_step_statistics(centred, weights, kernel, precise=precise)

    def start(init: int) -> _Start:
        return _initial_parameters(
            centred,
            weights,
            center,
            config,
            rng,
            tied_moment,
            noise_floor,
            weights_init,
            means_init,
            precisions_init,
        )

    return _fit_starts(
        statistics,
        start,
        _Moments(
            n_samples,
            float(n_samples if weights is None else weights.sum()),
            center,
            tied_moment,
            noise_floor,
            dtype,
        ),
        config,
        callback,
        warm_start,
        warm_start_lower_bound,
    )


# --- the parts every fit shares: the in-memory one above, the chunked ones -----------


ChunkStatistics = Callable[[ScoringKernel, bool], SufficientStatistics]
"""One E-step pass: ``statistics(kernel, precise)`` sums the sufficient statistics
of all (centred) rows under ``kernel``; ``precise`` as in :func:`e_step_statistics`."""


@dataclass(frozen=True)
class _Moments:
    """What a fit knows about its data before EM starts.

    ``center`` has shape (n_features,); ``tied_moment`` (``tied`` only) has
    shape (n_features, n_features).
    """

    n_samples: int
    total_weight: float
    center: np.ndarray
    tied_moment: np.ndarray | None
    noise_floor: float
    dtype: type


def _checked_start(
    config: FitConfig,
    n_features: int,
    warm_start: MixtureParameters | None,
    weights_init: object,
    means_init: object,
    precisions_init: object,
) -> tuple[object, object, object]:
    """The given initial parameters (those of ``warm_start`` if given), checked."""
    if warm_start is not None:
        if warm_start.covariance_type != config.covariance_type or warm_start.means.shape != (
            config.n_components,
            n_features,
        ):
            raise InvalidParameterError(
                "warm_start parameters do not match this configuration and data width"
            )
        weights_init = warm_start.weights
        means_init = warm_start.means
        precisions_init = None
    _check_start(
        {"weights": weights_init, "means": means_init, "precisions": precisions_init},
        config,
        n_features,
    )
    return weights_init, means_init, precisions_init


def _checked_scale(scale: float, config: FitConfig, n_features: int) -> float:
    """The largest absolute deviation from the mean, if the dtype can hold its square."""
    if not np.isfinite(scale) or scale > np.sqrt(
        np.finfo(_DTYPES[config.dtype]).max / (16.0 * n_features)
    ):
        raise NumericalError(
            f"the data's values are too large to fit in {config.dtype} (largest deviation "
            f"from the mean: {scale:.3g}); scale the data"
        )
    return scale


def _fit_starts(
    statistics: ChunkStatistics,
    start: Callable[[int], _Start],
    moments: _Moments,
    config: FitConfig,
    callback: ProgressCallback | None,
    warm_start: MixtureParameters | None,
    warm_start_lower_bound: float,
) -> FitResult:
    """EM from each initialisation (``start(init)``, in centred coordinates); the best,
    with its means shifted back by the centre."""
    n_init = 1 if warm_start is not None else config.n_init
    center = moments.center
    best: FitResult | None = None
    for init in range(n_init):
        if warm_start is not None:
            first = _Start(
                warm_start.weights, warm_start.means - center, warm_start.precisions_cholesky
            )
        else:
            first = start(init)
        result = _run_em(
            statistics,
            moments,
            first,
            config,
            init,
            n_init,
            callback,
            warm_start_lower_bound if warm_start is not None else -np.inf,
        )
        if best is None or result.lower_bound > best.lower_bound:
            best = result
    assert best is not None
    p = best.parameters
    shifted = MixtureParameters(
        p.covariance_type, p.weights, p.means + center, p.covariances, p.precisions_cholesky
    )
    return FitResult(
        shifted,
        best.converged,
        best.n_iter,
        best.lower_bound,
        best.lower_bound_history,
        moments.n_samples,
    )


_FLOAT32_NOISE = float(np.finfo(np.float32).eps) / _EPS


def _em_pass(
    statistics: ChunkStatistics,
    kernel: ScoringKernel,
    config: FitConfig,
    tied_moment: np.ndarray | None,
    noise_floor: float,
) -> tuple[SufficientStatistics, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """One EM iteration: the fused E-step pass, then the M-step.

    Float32 data first take the fast float32 statistics; when a resulting
    variance sinks below float32's rounding noise (where raw moments cannot be
    trusted), the pass is redone with float64 statistics.
    """
    if kernel.dtype == np.float32:
        stats = statistics(kernel, False)
        _check_finite(stats, config)
        try:
            return stats, _m_step(stats, config, tied_moment, noise_floor * _FLOAT32_NOISE)
        except CollapsedComponentError:
            pass
    stats = statistics(kernel, True)
    _check_finite(stats, config)
    return stats, _m_step(stats, config, tied_moment, noise_floor)


def _check_finite(stats: SufficientStatistics, config: FitConfig) -> None:
    if not np.isfinite(stats.log_likelihood):
        raise NumericalError(
            "the log-likelihood is not finite: the data's scale overflows the "
            f"computation in {config.dtype}; scale the data or use float64"
        )


def _run_em(
    statistics: ChunkStatistics,
    moments: _Moments,
    start: _Start,
    config: FitConfig,
    init: int,
    n_init: int,
    callback: ProgressCallback | None,
    lower_bound: float = -np.inf,
) -> FitResult:
    """One initialisation's EM iterations, on centred data (``statistics`` passes over it).

    ``lower_bound`` is the one the first iteration's change is measured from.
    """
    total_weight = moments.total_weight
    weights, means, precisions_cholesky = start.weights, start.means, start.precisions_cholesky
    covariances = None
    history: list[float] = []
    converged = False
    n_iter = 0
    for n_iter in range(1, config.max_iter + 1):
        previous = lower_bound
        kernel = ScoringKernel.build(
            weights, means, precisions_cholesky, config.covariance_type, moments.dtype
        )
        stats, (nk, means, covariances, precisions_cholesky) = _em_pass(
            statistics, kernel, config, moments.tied_moment, moments.noise_floor
        )
        lower_bound = stats.log_likelihood / total_weight
        weights = nk / nk.sum()
        history.append(lower_bound)
        if callback is not None and callback(
            FitProgress(init, n_init, n_iter, config.max_iter, lower_bound)
        ):
            raise FitCancelled("the fit was asked to stop")
        if abs(lower_bound - previous) < config.tol:
            converged = True
            break
    parameters = MixtureParameters(
        config.covariance_type, weights, means, covariances, precisions_cholesky
    )
    return FitResult(parameters, converged, n_iter, lower_bound, history, moments.n_samples)
