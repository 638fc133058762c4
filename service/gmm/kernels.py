"""The chunked, fused kernels: E-step, scoring and sufficient statistics.

One pass over the data does, for each chunk of rows:

1. the weighted log-probabilities ``log pi_k + log N(x_n | k)`` of every
   component at once, with one matrix product against the stacked precision
   Cholesky factors (or, for ``diag``/``spherical``, against the stacked
   precisions);
2. log-sum-exp over the components, giving each point's log-likelihood and its
   responsibilities;
3. the sufficient statistics the M-step needs (``N_k``, ``sum r x`` and the
   second moments), accumulated in float64.

Temporaries are chunk-sized (``chunk x n_components x n_features`` at most),
never ``n_samples x n_components x n_features``. Chunks are split over
threads; BLAS is held to one thread per Python thread, which on a small machine
is both faster and far steadier than letting BLAS spawn its own threads.
The split and the reduction are in a fixed order, so results are bit-identical
run to run.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from .covariance import SufficientStatistics, log_det_cholesky

__all__ = [
    "ScoringKernel",
    "accumulate_statistics",
    "e_step_statistics",
    "map_chunks",
    "weighted_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)
# About 2 MiB of float64 per chunk-sized temporary keeps a chunk in cache.
_CHUNK_BYTES = 2 << 20
_MIN_CHUNK = 256
_MAX_CHUNK = 16384
_N_THREADS = max(1, min(4, os.cpu_count() or 1))

T = TypeVar("T")


@dataclass(frozen=True)
class ScoringKernel:
    """Parameters laid out for the batched E-step.

    Built once per set of parameters; the matrices are in the compute dtype.

    Attributes
    ----------
    covariance_type : str
    dtype : numpy dtype
        Compute dtype of the matrix products (float64 or float32).
    constant : ndarray of shape (n_components,)
        ``log pi_k - 0.5 * D * log(2 pi) + log det U_k``.
    matrix : ndarray
        ``full``: stacked factors, shape (n_features, n_components * n_features);
        ``tied``: the factor, shape (n_features, n_features);
        ``diag``: precisions, shape (n_features, n_components);
        ``spherical``: precisions, shape (n_components,).
    offset : ndarray
        ``full``: ``mu_k U_k`` stacked, shape (n_components * n_features,);
        ``tied``: ``mu_k U``, shape (n_components, n_features);
        ``diag``/``spherical``: ``-2 * mu_k * precision_k``, shape (n_features, n_components),
        and the squared-mean term is folded into ``constant``.
    """

    covariance_type: str
    dtype: np.dtype
    n_components: int
    constant: np.ndarray
    matrix: np.ndarray
    offset: np.ndarray

    @classmethod
    def build(
        cls,
        weights: np.ndarray,
        means: np.ndarray,
        precisions_cholesky: np.ndarray,
        covariance_type: str,
        dtype: np.dtype | type = np.float64,
    ) -> ScoringKernel:
        """Lay out ``weights``, ``means`` and ``precisions_cholesky`` for the kernels.

        Parameters
        ----------
        weights : ndarray of shape (n_components,)
        means : ndarray of shape (n_components, n_features)
        precisions_cholesky : ndarray, shape by ``covariance_type``
        """
        n_components, n_features = means.shape
        dtype = np.dtype(dtype)
        log_det = log_det_cholesky(precisions_cholesky, covariance_type, n_features)
        with np.errstate(divide="ignore"):
            constant = np.log(weights) - 0.5 * n_features * _LOG_2PI + log_det
        if covariance_type == "full":
            matrix = np.concatenate(list(precisions_cholesky), axis=1)
            offset = np.einsum("kd,kde->ke", means, precisions_cholesky).reshape(-1)
        elif covariance_type == "tied":
            matrix = precisions_cholesky
            offset = means @ precisions_cholesky
        elif covariance_type == "diag":
            precisions = precisions_cholesky**2
            constant = constant - 0.5 * np.sum(means**2 * precisions, axis=1)
            matrix = precisions.T
            offset = (-2.0 * means * precisions).T
        else:
            precisions = precisions_cholesky**2
            constant = constant - 0.5 * np.sum(means**2, axis=1) * precisions
            matrix = precisions
            offset = (-2.0 * means * precisions[:, None]).T
        return cls(
            covariance_type=covariance_type,
            dtype=dtype,
            n_components=n_components,
            constant=np.ascontiguousarray(constant, dtype=dtype),
            matrix=np.ascontiguousarray(matrix, dtype=dtype),
            offset=np.ascontiguousarray(offset, dtype=dtype),
        )


# --- per-chunk kernels ---------------------------------------------------------


def _mahalanobis_full(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    y = x @ kernel.matrix
    y -= kernel.offset
    np.square(y, out=y)
    return y.reshape(len(x), kernel.n_components, -1).sum(axis=2)


def _mahalanobis_tied(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    y = x @ kernel.matrix
    diff = y[:, None, :] - kernel.offset[None, :, :]
    np.square(diff, out=diff)
    return diff.sum(axis=2)


def _mahalanobis_diag(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    # The ||mu||^2 term lives in the constant.
    return (x * x) @ kernel.matrix + x @ kernel.offset


def _mahalanobis_spherical(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    squared_norms = np.einsum("nd,nd->n", x, x)
    return squared_norms[:, None] * kernel.matrix + x @ kernel.offset


_MAHALANOBIS = {
    "full": _mahalanobis_full,
    "tied": _mahalanobis_tied,
    "diag": _mahalanobis_diag,
    "spherical": _mahalanobis_spherical,
}


def weighted_log_prob(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for a chunk of rows.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features), in the kernel's dtype

    Returns
    -------
    log_prob : ndarray of shape (n_rows, n_components)
    """
    log_prob = _MAHALANOBIS[kernel.covariance_type](x, kernel)
    log_prob *= -0.5
    log_prob += kernel.constant
    return log_prob


def log_resp_normalize(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over components, in place.

    Parameters
    ----------
    log_prob : ndarray of shape (n_rows, n_components)
        Weighted log-probabilities; overwritten with the responsibilities.

    Returns
    -------
    log_norm : ndarray of shape (n_rows,)
        ``log p(x_n)``.
    responsibilities : ndarray of shape (n_rows, n_components)
        The same buffer as ``log_prob``.
    """
    peak = log_prob.max(axis=1, keepdims=True)
    peak[~np.isfinite(peak)] = 0.0
    log_prob -= peak
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=1, keepdims=True)
    log_prob /= total
    log_norm = np.log(total[:, 0]) + peak[:, 0]
    return log_norm, log_prob


# --- sufficient statistics -------------------------------------------------------


def _second_moment_full(x: np.ndarray, weighted_resp: np.ndarray) -> np.ndarray:
    n_rows, n_features = x.shape
    n_components = weighted_resp.shape[1]
    scaled = (weighted_resp[:, :, None] * x[:, None, :]).reshape(n_rows, -1)
    stacked = x.T @ scaled  # (n_features, n_components * n_features)
    return stacked.reshape(n_features, n_components, n_features).transpose(1, 0, 2)


def _second_moment_diag(x: np.ndarray, weighted_resp: np.ndarray) -> np.ndarray:
    return weighted_resp.T @ (x * x)


def _second_moment_tied(x: np.ndarray, weighted_resp: np.ndarray) -> np.ndarray:
    # Tied covariances need sum w x x^T, which does not depend on r; the fit
    # computes it once (see tied_second_moment) and this contributes nothing.
    return np.zeros((x.shape[1], x.shape[1]))


_SECOND_MOMENT = {
    "full": _second_moment_full,
    "tied": _second_moment_tied,
    "diag": _second_moment_diag,
    "spherical": _second_moment_diag,
}


def _chunk_statistics(
    x: np.ndarray, weighted_resp: np.ndarray, covariance_type: str, log_likelihood: float
) -> SufficientStatistics:
    return SufficientStatistics(
        resp_sum=weighted_resp.sum(axis=0, dtype=np.float64),
        weighted_x=(weighted_resp.T @ x).astype(np.float64),
        second_moment=_SECOND_MOMENT[covariance_type](x, weighted_resp).astype(np.float64),
        log_likelihood=log_likelihood,
    )


# --- chunking and threads ------------------------------------------------------


def chunk_rows(n_features: int, n_components: int) -> int:
    """Rows per chunk so that the widest chunk temporary stays about cache-sized."""
    width = max(1, n_components * (n_features + 1))
    return int(min(_MAX_CHUNK, max(_MIN_CHUNK, _CHUNK_BYTES // (8 * width))))


def _chunk_slices(n_samples: int, rows: int) -> list[slice]:
    return [slice(start, min(start + rows, n_samples)) for start in range(0, n_samples, rows)]


def map_chunks(
    function: Callable[[slice], T], n_samples: int, rows: int
) -> Iterator[T]:
    """Apply ``function`` to each row slice, in threads, yielding in slice order."""
    slices = _chunk_slices(n_samples, rows)
    n_threads = min(_N_THREADS, len(slices))
    with threadpool_limits(limits=1, user_api="blas"):
        if n_threads <= 1:
            yield from map(function, slices)
            return
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            yield from pool.map(function, slices)


def _reduce(parts: Iterator[SufficientStatistics]) -> SufficientStatistics:
    total = next(parts)
    for part in parts:
        total = total + part
    return total


def e_step_statistics(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    kernel: ScoringKernel,
) -> SufficientStatistics:
    """One fused pass: E-step under ``kernel`` and the M-step's sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), in the kernel's dtype
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    stats : SufficientStatistics
        With ``log_likelihood = sum_n w_n log p(x_n)``.
    """
    n_samples, n_features = X.shape
    rows = chunk_rows(n_features, kernel.n_components)

    def one_chunk(rows_slice: slice) -> SufficientStatistics:
        x = X[rows_slice]
        log_norm, resp = log_resp_normalize(weighted_log_prob(x, kernel))
        if sample_weight is None:
            log_likelihood = float(np.sum(log_norm, dtype=np.float64))
        else:
            w = sample_weight[rows_slice]
            log_likelihood = float(np.dot(w.astype(np.float64), log_norm.astype(np.float64)))
            resp *= w[:, None].astype(resp.dtype)
        return _chunk_statistics(x, resp, kernel.covariance_type, log_likelihood)

    return _reduce(map_chunks(one_chunk, n_samples, rows))


def accumulate_statistics(
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    responsibilities: np.ndarray,
    covariance_type: str,
) -> SufficientStatistics:
    """Sufficient statistics of given responsibilities (used to initialise).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    responsibilities : ndarray of shape (n_samples, n_components)
    """
    n_samples, n_features = X.shape
    rows = chunk_rows(n_features, responsibilities.shape[1])

    def one_chunk(rows_slice: slice) -> SufficientStatistics:
        resp = responsibilities[rows_slice].astype(X.dtype)
        if sample_weight is not None:
            resp = resp * sample_weight[rows_slice, None].astype(X.dtype)
        return _chunk_statistics(X[rows_slice], resp, covariance_type, 0.0)

    return _reduce(map_chunks(one_chunk, n_samples, rows))


def tied_second_moment(X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    """``sum_n w_n x_n x_n^T``, of shape (n_features, n_features), in float64."""
    n_samples, n_features = X.shape
    rows = chunk_rows(n_features, 1)

    def one_chunk(rows_slice: slice) -> np.ndarray:
        x = X[rows_slice]
        xw = x if sample_weight is None else x * sample_weight[rows_slice, None].astype(x.dtype)
        return (x.T @ xw).astype(np.float64)

    total = np.zeros((n_features, n_features))
    for part in map_chunks(one_chunk, n_samples, rows):
        total += part
    return total
