"""Covariance-type specific pieces of the Gaussian mixture.

Each covariance type (``full``, ``tied``, ``diag``, ``spherical``) differs in
four places, and each place has one small function per type, chosen through a
dict keyed on ``covariance_type``:

* turning covariances (or precisions) into precision Cholesky factors,
* the log-determinant of those factors,
* the M-step estimate of the covariances from the sufficient statistics,
* the number of free parameters (for BIC and AIC).

The shapes follow scikit-learn's ``GaussianMixture``:

============  ======================================================
type          covariances / precisions_cholesky shape
============  ======================================================
full          (n_components, n_features, n_features)
tied          (n_features, n_features)
diag          (n_components, n_features)
spherical     (n_components,)
============  ======================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from .errors import CollapsedComponentError, InvalidParameterError

__all__ = [
    "COVARIANCE_TYPES",
    "SufficientStatistics",
    "covariances_from_precisions_cholesky",
    "estimate_covariances",
    "log_det_cholesky",
    "n_parameters",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass
class SufficientStatistics:
    """What one pass over the (centred) data gives the M-step.

    Attributes
    ----------
    resp_sum : ndarray of shape (n_components,)
        ``N_k = sum_n w_n r_nk``.
    weighted_x : ndarray of shape (n_components, n_features)
        ``sum_n w_n r_nk x_n``.
    second_moment : ndarray
        ``sum_n w_n r_nk x_n x_n^T`` of shape (n_components, n_features, n_features)
        for ``full``; ``sum_n w_n r_nk x_n**2`` of shape (n_components, n_features)
        for ``diag``; ``sum_n w_n r_nk |x_n|^2`` of shape (n_components,) for
        ``spherical``; ``sum_n w_n x_n x_n^T`` of shape (n_features, n_features)
        for ``tied`` (it does not depend on r).
    log_likelihood : float
        ``sum_n w_n log p(x_n)`` under the parameters of the E-step that made
        the responsibilities (0 when the responsibilities were given).
    """

    resp_sum: np.ndarray
    weighted_x: np.ndarray
    second_moment: np.ndarray
    log_likelihood: float = 0.0

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        return SufficientStatistics(
            self.resp_sum + other.resp_sum,
            self.weighted_x + other.weighted_x,
            self.second_moment + other.second_moment,
            self.log_likelihood + other.log_likelihood,
        )


# --- precision Cholesky factors ------------------------------------------------


def _cholesky_of_inverse(covariance: np.ndarray, component: int | None, floor: float) -> np.ndarray:
    """Upper-triangular U with U U^T = inv(covariance), without inverting it."""
    try:
        cov_chol = linalg.cholesky(covariance, lower=True)
    except linalg.LinAlgError:
        raise CollapsedComponentError(component) from None
    if np.min(np.diag(cov_chol)) ** 2 <= floor:
        raise CollapsedComponentError(component)
    eye = np.eye(covariance.shape[0], dtype=covariance.dtype)
    return linalg.solve_triangular(cov_chol, eye, lower=True).T


def _precisions_cholesky_full(covariances: np.ndarray, floor: float) -> np.ndarray:
    try:  # all components at once; on failure, one by one to name the culprit
        cov_chol = np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        cov_chol = None
    pivots = None if cov_chol is None else np.diagonal(cov_chol, axis1=1, axis2=2)
    if pivots is None or not np.all(np.isfinite(pivots)) or np.min(pivots) ** 2 <= floor:
        return np.stack([_cholesky_of_inverse(c, k, floor) for k, c in enumerate(covariances)])
    eye = np.broadcast_to(np.eye(covariances.shape[1]), covariances.shape)
    return np.transpose(np.linalg.solve(cov_chol, eye), (0, 2, 1))


def _precisions_cholesky_tied(covariances: np.ndarray, floor: float) -> np.ndarray:
    return _cholesky_of_inverse(covariances, None, floor)


def _precisions_cholesky_elementwise(covariances: np.ndarray, floor: float) -> np.ndarray:
    bad = np.flatnonzero(np.any(np.reshape(covariances <= floor, (len(covariances), -1)), axis=1))
    if bad.size or not np.all(np.isfinite(covariances)):
        raise CollapsedComponentError(int(bad[0]) if bad.size else None)
    return 1.0 / np.sqrt(covariances)


_PRECISIONS_CHOLESKY: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "full": _precisions_cholesky_full,
    "tied": _precisions_cholesky_tied,
    "diag": _precisions_cholesky_elementwise,
    "spherical": _precisions_cholesky_elementwise,
}


def precisions_cholesky_from_covariances(
    covariances: np.ndarray, covariance_type: str, floor: float = 0.0
) -> np.ndarray:
    """Cholesky factors of the precision matrices, from the covariances.

    Parameters
    ----------
    floor : float
        Variances (Cholesky pivots squared) at or below this are rounding
        noise, not spread: the component has collapsed.

    Raises
    ------
    CollapsedComponentError
        If a covariance is not positive definite above ``floor``.
    """
    if not np.all(np.isfinite(covariances)):
        raise CollapsedComponentError(None)
    return _PRECISIONS_CHOLESKY[covariance_type](np.asarray(covariances, dtype=np.float64), floor)


def precisions_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factors from user-given precision matrices (``precisions_init``)."""
    precisions = np.asarray(precisions, dtype=np.float64)
    try:
        if covariance_type == "full":
            return np.stack([linalg.cholesky(p, lower=True) for p in precisions])
        if covariance_type == "tied":
            return linalg.cholesky(precisions, lower=True)
    except linalg.LinAlgError:
        raise InvalidParameterError("precisions must be symmetric positive definite") from None
    if np.any(precisions <= 0.0):
        raise InvalidParameterError("precisions must be positive")
    return np.sqrt(precisions)


def covariances_from_precisions_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Covariances back from precision Cholesky factors: ``inv(U U^T)``."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions_cholesky**2

    def one(u: np.ndarray) -> np.ndarray:
        u_inv = linalg.solve_triangular(u, np.eye(u.shape[0]), lower=False)
        return u_inv.T @ u_inv

    if covariance_type == "tied":
        return one(precisions_cholesky)
    return np.stack([one(u) for u in precisions_cholesky])


# --- log-determinants ----------------------------------------------------------


def log_det_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str, n_features: int
) -> np.ndarray | float:
    """Log-determinant of each precision Cholesky factor.

    Returns
    -------
    log_det : ndarray of shape (n_components,), or float for ``tied``
        ``log det(U_k) = 0.5 * log det(precision_k)``.
    """
    if covariance_type == "full":
        diagonals = np.diagonal(precisions_cholesky, axis1=1, axis2=2)
        return np.sum(np.log(diagonals), axis=1)
    if covariance_type == "tied":
        return float(np.sum(np.log(np.diag(precisions_cholesky))))
    if covariance_type == "diag":
        return np.sum(np.log(precisions_cholesky), axis=1)
    return n_features * np.log(precisions_cholesky)


# --- M-step covariance estimators ----------------------------------------------
#
# Each takes the statistics, the component totals nk (already including the
# small guard scikit-learn adds), the new means, and reg_covar.


def _centred_second_moment(stats: SufficientStatistics, means: np.ndarray) -> np.ndarray:
    """``sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T`` from the raw moments, per component."""
    outer_mean_sum = means[:, :, None] * stats.weighted_x[:, None, :]
    return (
        stats.second_moment
        - outer_mean_sum
        - np.transpose(outer_mean_sum, (0, 2, 1))
        + stats.resp_sum[:, None, None] * (means[:, :, None] * means[:, None, :])
    )


def _estimate_full(
    stats: SufficientStatistics, nk: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    covariances = _centred_second_moment(stats, means) / nk[:, None, None]
    covariances = 0.5 * (covariances + np.transpose(covariances, (0, 2, 1)))
    n_features = means.shape[1]
    covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
    return covariances


def _estimate_tied(
    stats: SufficientStatistics, nk: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    avg_means2 = (nk * means.T) @ means
    covariance = (stats.second_moment - avg_means2) / nk.sum()
    covariance = 0.5 * (covariance + covariance.T)
    covariance.flat[:: len(covariance) + 1] += reg_covar
    return covariance


def _estimate_diag(
    stats: SufficientStatistics, nk: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    centred = (
        stats.second_moment - 2.0 * means * stats.weighted_x + stats.resp_sum[:, None] * means**2
    )
    return centred / nk[:, None] + reg_covar


def _estimate_spherical(
    stats: SufficientStatistics, nk: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    centred = (
        stats.second_moment
        - 2.0 * np.einsum("kd,kd->k", means, stats.weighted_x)
        + stats.resp_sum * np.einsum("kd,kd->k", means, means)
    )
    return centred / (nk * means.shape[1]) + reg_covar


_ESTIMATORS = {
    "full": _estimate_full,
    "tied": _estimate_tied,
    "diag": _estimate_diag,
    "spherical": _estimate_spherical,
}


def estimate_covariances(
    stats: SufficientStatistics,
    nk: np.ndarray,
    means: np.ndarray,
    reg_covar: float,
    covariance_type: str,
) -> np.ndarray:
    """M-step covariances from the sufficient statistics (plus ``reg_covar`` on the diagonal)."""
    return _ESTIMATORS[covariance_type](stats, nk, means, reg_covar)


# --- free parameters -----------------------------------------------------------

_COVARIANCE_PARAMETERS: dict[str, Callable[[int, int], float]] = {
    "full": lambda k, d: k * d * (d + 1) / 2.0,
    "tied": lambda k, d: d * (d + 1) / 2.0,
    "diag": lambda k, d: k * d,
    "spherical": lambda k, d: k,
}


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters of a mixture, as scikit-learn counts them."""
    cov_params = _COVARIANCE_PARAMETERS[covariance_type](n_components, n_features)
    return int(cov_params + n_features * n_components + n_components - 1)
