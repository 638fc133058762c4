"""Stepwise EM: update a fitted mixture with new rows, without the old ones.

A fitted mixture stands for the sufficient statistics of the data it was fitted
to (:func:`implied_statistics`): with ``n_effective`` rows behind it, component
``k`` holds ``N_k = n_effective * w_k`` rows, their sum ``N_k mu_k`` and their
second moment ``N_k (Sigma_k - reg_covar I + mu_k mu_k^T)``. An update
(:func:`update_mixture`, Cappé and Moulines' online EM, "stepwise EM" in Liang
and Klein's words) runs one E-step of the new rows under the current
parameters, blends the per-row statistics::

    s = (1 - rho) * s_old + rho * s_new        s_old = S_old / n_effective
                                               s_new = S_new / n_new

and takes the M-step of ``s`` (the same M-step as :mod:`.em`'s).

``rho``, the learning rate:

* default ``n_new / (n_effective + n_new)``: the old and new statistics pooled,
  exactly the M-step of the old data's and the new rows' responsibilities
  together; the old data never fade (the model is the fit of everything seen,
  up to the E-step being taken once, under the parameters of the moment).
* a given ``learning_rate`` in (0, 1] is a forgetting factor: the old
  statistics' weight decays by ``(1 - rho)`` per update, so a batch seen ``t``
  updates ago weighs ``rho (1 - rho)^t``; the memory is about ``1 / rho``
  batches. ``rho = 1`` forgets everything but the new rows (one EM step on them
  from the current parameters). For a model that must follow drifting traffic.

After an update the mixture stands for ``n_new / rho`` rows (``n_effective +
n_new`` when pooled; ``n_new / rho`` settles there under a fixed rate): the
``n_effective`` to give the next update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._validation import check_data
from .chunked import (
    ChunkedData,
    ChunkMap,
    _add,
    _chunk_statistics,
    _summarise,
    _tied_part,
    local_chunk_map,
)
from .covariance import SufficientStatistics
from .em import FitConfig, _m_step, _noise_floor
from .errors import InvalidDataError, InvalidParameterError
from .kernels import ScoringKernel, e_step_statistics, tied_second_moment
from .mixture import MixtureParameters

__all__ = ["StepwiseUpdate", "implied_statistics", "update_mixture", "update_mixture_chunked"]


@dataclass(frozen=True)
class StepwiseUpdate:
    """The outcome of one stepwise update.

    Attributes
    ----------
    parameters : MixtureParameters
        The updated mixture.
    n_effective : float
        How many rows the updated mixture stands for (the next update's
        ``n_effective``).
    learning_rate : float
        The ``rho`` used: the weight of the new rows' statistics.
    n_samples : int
        The number of new rows.
    log_likelihood : float
        Mean log-likelihood of the new rows under the parameters before the update.
    """

    parameters: MixtureParameters
    n_effective: float
    learning_rate: float
    n_samples: int
    log_likelihood: float


# --- the statistics a fitted mixture stands for -----------------------------------


def _second_full(means: np.ndarray, covariances: np.ndarray, nk: np.ndarray) -> np.ndarray:
    outer = means[:, :, None] * means[:, None, :]
    return nk[:, None, None] * (covariances + outer)


def _second_tied(means: np.ndarray, covariance: np.ndarray, nk: np.ndarray) -> np.ndarray:
    return nk.sum() * covariance + (nk * means.T) @ means


def _second_diag(means: np.ndarray, covariances: np.ndarray, nk: np.ndarray) -> np.ndarray:
    return nk[:, None] * (covariances + means**2)


def _second_spherical(means: np.ndarray, variances: np.ndarray, nk: np.ndarray) -> np.ndarray:
    return nk * (means.shape[1] * variances + np.einsum("kd,kd->k", means, means))


_IMPLIED_SECOND_MOMENT: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "full": _second_full,
    "tied": _second_tied,
    "diag": _second_diag,
    "spherical": _second_spherical,
}


def _unregularized(covariances: np.ndarray, covariance_type: str, reg_covar: float) -> np.ndarray:
    """The covariances without the ``reg_covar`` the M-step added to their diagonals."""
    if covariance_type in ("diag", "spherical"):
        return covariances - reg_covar
    covariances = np.array(covariances)
    n_features = covariances.shape[-1]
    diagonal = np.arange(n_features)
    covariances[..., diagonal, diagonal] -= reg_covar
    return covariances


def implied_statistics(
    params: MixtureParameters,
    n_effective: float,
    *,
    reg_covar: float = 0.0,
    center: np.ndarray | None = None,
) -> SufficientStatistics:
    """The sufficient statistics of ``n_effective`` rows that ``params`` is the M-step of.

    Parameters
    ----------
    params : MixtureParameters
    n_effective : float
        How many rows the mixture stands for (1 gives per-row averages).
    reg_covar : float
        What the M-step added to the covariances' diagonals; taken off, so the
        M-step of these statistics gives ``params`` back.
    center : ndarray of shape (n_features,), optional
        The statistics of the rows minus ``center`` (the M-step's coordinates).

    Returns
    -------
    SufficientStatistics
        ``resp_sum`` (n_components,) ``= n_effective * weights``; ``weighted_x``
        (n_components, n_features); ``second_moment`` shaped as
        :class:`SufficientStatistics` says for ``params.covariance_type``.
    """
    means = params.means if center is None else params.means - center
    nk = n_effective * params.weights
    covariances = _unregularized(params.covariances, params.covariance_type, reg_covar)
    second = _IMPLIED_SECOND_MOMENT[params.covariance_type](means, covariances, nk)
    return SufficientStatistics(nk, nk[:, None] * means, second)


# --- the update -------------------------------------------------------------------


def _scaled(stats: SufficientStatistics, factor: float) -> SufficientStatistics:
    return SufficientStatistics(
        factor * stats.resp_sum,
        factor * stats.weighted_x,
        factor * stats.second_moment,
        factor * stats.log_likelihood,
    )


def _check_arguments(
    params: MixtureParameters,
    n_effective: float | None,
    learning_rate: float | None,
    reg_covar: float,
) -> None:
    problems = []
    if not (isinstance(params, MixtureParameters)):
        raise InvalidParameterError("params must be MixtureParameters")
    if n_effective is None:
        if learning_rate is None:
            problems.append("n_effective is needed when learning_rate is not given")
    elif isinstance(n_effective, bool) or not (np.isfinite(n_effective) and n_effective > 0):
        problems.append(f"n_effective must be a finite number > 0; got {n_effective!r}")
    if learning_rate is not None and (
        isinstance(learning_rate, bool) or not (0.0 < learning_rate <= 1.0)
    ):
        problems.append(f"learning_rate must be in (0, 1]; got {learning_rate!r}")
    if not (np.isfinite(reg_covar) and reg_covar >= 0):
        problems.append(f"reg_covar must be >= 0; got {reg_covar!r}")
    if problems:
        raise InvalidParameterError("; ".join(problems))


def update_mixture(
    params: MixtureParameters,
    X: object,
    *,
    n_effective: float | None,
    learning_rate: float | None = None,
    reg_covar: float = 1e-6,
) -> StepwiseUpdate:
    """One stepwise-EM update of ``params`` with the new rows ``X``.

    Parameters
    ----------
    params : MixtureParameters
        The current mixture (the E-step's parameters).
    X : array-like of shape (n_samples, n_features)
        The new rows; float32 or float64 (computed in float64).
    n_effective : float or None
        How many rows ``params`` stands for: the training rows of a fit, the
        ``n_effective`` a previous update returned. Only the default
        ``learning_rate`` needs it (None: unknown, as for imported parameters).
    learning_rate : float in (0, 1], optional
        ``rho``, the weight of the new rows' statistics. Default
        ``n_samples / (n_effective + n_samples)``: old and new pooled. A fixed
        value forgets: the old statistics' weight decays by ``(1 - rho)`` per
        update (a memory of about ``1 / rho`` batches).
    reg_covar : float
        The model's ``reg_covar``: taken off the old covariances, added to the new.

    Returns
    -------
    StepwiseUpdate

    Raises
    ------
    InvalidDataError
        ``X`` is not a finite matrix with the mixture's ``n_features`` columns.
    InvalidParameterError
        ``n_effective``, ``learning_rate`` or ``reg_covar`` out of range.
    CollapsedComponentError
        A blended covariance is not positive definite.
    """
    _check_arguments(params, n_effective, learning_rate, reg_covar)
    X = check_data(X, n_features=params.n_features, dtype=np.float64)
    n_samples = X.shape[0]
    rho = _learning_rate(n_samples, n_effective, learning_rate)

    # Centred on the new rows, as a fit centres its data, so raw moments stay accurate.
    center = X.mean(axis=0)
    centred = X - center
    kernel = _centred_kernel(params, center)
    new = e_step_statistics(centred, None, kernel)
    if params.covariance_type == "tied":
        new.second_moment = tied_second_moment(centred, None)
    return _blend(params, new, n_samples, center, float(np.max(np.abs(centred))), rho, reg_covar)


def update_mixture_chunked(
    params: MixtureParameters,
    data: ChunkedData,
    *,
    n_effective: float | None,
    learning_rate: float | None = None,
    reg_covar: float = 1e-6,
    chunk_map: ChunkMap | None = None,
) -> StepwiseUpdate:
    """:func:`update_mixture` with the new rows held as row chunks (a stored dataset).

    Two passes over the chunks (their mean and range, then the E-step's
    statistics; three for ``tied``), each chunk read by ``chunk_map`` as in
    :func:`.chunked.fit_chunked`; memory beyond the parameters is a chunk. The
    same answer as :func:`update_mixture` on the whole matrix, up to the order
    of the sums.
    """
    _check_arguments(params, n_effective, learning_rate, reg_covar)
    if data.n_features != params.n_features:
        raise InvalidDataError(
            f"the data have {data.n_features} features; the mixture has {params.n_features}"
        )
    chunk_map = chunk_map or local_chunk_map
    n_samples = data.n_samples
    if n_samples < 1:
        raise InvalidDataError("an update needs at least one row")
    rho = _learning_rate(n_samples, n_effective, learning_rate)

    unweighted = [None] * len(data.readers)
    no_sample = [np.empty(0, dtype=np.int64)] * len(data.readers)
    summary = chunk_map(_summarise, data.tasks(unweighted, no_sample), _add)
    center, largest = summary.centre(n_samples)
    kernel = _centred_kernel(params, center)
    new = chunk_map(_chunk_statistics, data.tasks(unweighted, shared=(center, kernel, True)), _add)
    if params.covariance_type == "tied":
        new.second_moment = chunk_map(
            _tied_part, data.tasks(unweighted, shared=(center, np.float64)), _add
        )
    return _blend(params, new, n_samples, center, largest, rho, reg_covar)


def _learning_rate(n_samples: int, n_effective: float | None, learning_rate: float | None) -> float:
    if learning_rate is None:
        assert n_effective is not None
        return n_samples / (n_effective + n_samples)
    return float(learning_rate)


def _centred_kernel(params: MixtureParameters, center: np.ndarray) -> ScoringKernel:
    return ScoringKernel.build(
        params.weights, params.means - center, params.precisions_cholesky, params.covariance_type
    )


def _blend(
    params: MixtureParameters,
    new: SufficientStatistics,
    n_samples: int,
    center: np.ndarray,
    largest: float,
    rho: float,
    reg_covar: float,
) -> StepwiseUpdate:
    """The M-step of the old statistics blended with the new rows' (``largest``: the
    new rows' largest distance from ``center`` in any feature)."""
    config = FitConfig(
        n_components=params.n_components,
        covariance_type=params.covariance_type,
        reg_covar=reg_covar,
    )
    old = implied_statistics(params, 1.0, reg_covar=reg_covar, center=center)
    blended = _scaled(old, 1.0 - rho) + _scaled(new, rho / n_samples)

    scale = max(largest, float(np.max(np.abs(params.means - center))))
    tied = blended.second_moment if params.covariance_type == "tied" else None
    nk, means, covariances, precisions_cholesky = _m_step(
        blended, config, tied, _noise_floor(scale)
    )
    parameters = MixtureParameters(
        params.covariance_type, nk / nk.sum(), means + center, covariances, precisions_cholesky
    )
    return StepwiseUpdate(
        parameters=parameters,
        n_effective=n_samples / rho,
        learning_rate=rho,
        n_samples=n_samples,
        log_likelihood=new.log_likelihood / n_samples,
    )
