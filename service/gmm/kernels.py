"""The chunked, fused kernels: E-step, scoring and sufficient statistics.

One pass over the data does, for each chunk of rows:

1. the chunk's per-row features (for ``full``, the quadratic terms
   ``x_i x_j`` and ``x``), computed once;
2. the weighted log-probabilities ``log pi_k + log N(x_n | k)`` of every
   component at once: one matrix product of the features against the
   coefficients built from the precision matrices;
3. log-sum-exp over the components, giving each point's log-likelihood and its
   responsibilities;
4. the sufficient statistics the M-step needs (``N_k``, ``sum r x`` and the
   second moments): one matrix product of the features' transpose against
   the responsibilities, accumulated in float64.

Temporaries are chunk-sized (``chunk x D(D+1)/2`` at most), never
``n_samples x n_components x n_features``. The quadratic form is expanded, so
the fit centres the data first to keep it accurate. Chunks are split over
threads; BLAS is held to one thread per Python thread, which on a small machine
is both faster and far steadier than letting BLAS spawn its own threads.
The split and the reduction are in a fixed order, so results are bit-identical
run to run.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from .covariance import SufficientStatistics, log_det_cholesky

__all__ = [
    "ScoringKernel",
    "accumulate_statistics",
    "e_step_statistics",
    "log_norm",
    "map_chunks",
    "pin_blas_to_one_thread",
    "serial_chunks",
    "weighted_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)
# About 8 MiB of float64 features per chunk: big enough for efficient matrix
# products, small enough to stay in the last-level cache (measured on 2 cores).
_CHUNK_BYTES = 8 << 20
_MIN_CHUNK = 256
_MAX_CHUNK = 16384
_N_THREADS = max(1, min(4, os.cpu_count() or 1))

T = TypeVar("T")


def _n_quadratic(n_features: int) -> int:
    return n_features * (n_features + 1) // 2


def _pair_coefficients(matrices: np.ndarray) -> np.ndarray:
    """Upper-triangle entries of symmetric matrices, off-diagonals doubled.

    Parameters
    ----------
    matrices : ndarray of shape (n_components, n_features, n_features)

    Returns
    -------
    coefficients : ndarray of shape (n_features * (n_features + 1) / 2, n_components)
        So that ``pairs(x) @ coefficients[:, k] = x^T M_k x``.
    """
    n_features = matrices.shape[1]
    rows, cols = np.triu_indices(n_features)
    scale = np.where(rows == cols, 1.0, 2.0)
    return (matrices[:, rows, cols] * scale).T


@dataclass(frozen=True)
class ScoringKernel:
    """Parameters laid out as one matrix against per-row features.

    For every covariance type the weighted log-probabilities of a chunk are
    ``features(x) @ coefficients + constant`` (plus, for ``tied``, the shared
    term ``-0.5 * |x U|^2``), and the sufficient statistics are
    ``features(x)^T @ responsibilities``: one matrix product each way.

    ============  ==========================================================
    type          features(x)
    ============  ==========================================================
    full          ``[x_i x_j for i <= j, x]``   (D(D+1)/2 + D columns)
    tied          ``x``
    diag          ``[x**2, x]``
    spherical     ``[|x|^2, x]``
    ============  ==========================================================

    Attributes
    ----------
    coefficients : ndarray of shape (n_feature_columns, n_components)
    constant : ndarray of shape (n_components,)
        ``log pi_k - 0.5 D log(2 pi) + log det U_k - 0.5 mu_k^T P_k mu_k``.
    tied_factor : ndarray of shape (n_features, n_features) or None
        ``U`` for ``tied``.
    """

    covariance_type: str
    dtype: np.dtype
    n_components: int
    n_features: int
    coefficients: np.ndarray
    constant: np.ndarray
    tied_factor: np.ndarray | None = None

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
        log_det = log_det_cholesky(precisions_cholesky, covariance_type, n_features)
        with np.errstate(divide="ignore"):
            constant = np.log(weights) - 0.5 * n_features * _LOG_2PI + log_det
        tied_factor = None
        if covariance_type == "full":
            precisions = precisions_cholesky @ np.transpose(precisions_cholesky, (0, 2, 1))
            linear = np.einsum("kde,ke->kd", precisions, means)
            quadratic = -0.5 * _pair_coefficients(precisions)
            coefficients = np.vstack([quadratic, linear.T])
            constant = constant - 0.5 * np.einsum("kd,kd->k", linear, means)
        elif covariance_type == "tied":
            precision = precisions_cholesky @ precisions_cholesky.T
            linear = means @ precision
            coefficients = linear.T
            constant = constant - 0.5 * np.einsum("kd,kd->k", linear, means)
            tied_factor = precisions_cholesky
        elif covariance_type == "diag":
            precisions = precisions_cholesky**2
            coefficients = np.vstack([-0.5 * precisions.T, (means * precisions).T])
            constant = constant - 0.5 * np.sum(means**2 * precisions, axis=1)
        else:
            precisions = precisions_cholesky**2
            coefficients = np.vstack([-0.5 * precisions, (means * precisions[:, None]).T])
            constant = constant - 0.5 * np.sum(means**2, axis=1) * precisions
        dtype = np.dtype(dtype)
        return cls(
            covariance_type=covariance_type,
            dtype=dtype,
            n_components=n_components,
            n_features=n_features,
            coefficients=np.ascontiguousarray(coefficients, dtype=dtype),
            constant=np.ascontiguousarray(constant, dtype=dtype),
            tied_factor=None if tied_factor is None else tied_factor.astype(dtype),
        )


# --- per-row features ------------------------------------------------------------
#
# A chunk is held transposed, features x rows, so that building the features
# and the K-way log-sum-exp are operations on long contiguous rows.


def _features_full(xt: np.ndarray) -> np.ndarray:
    n_features, n_rows = xt.shape
    n_pairs = _n_quadratic(n_features)
    features = np.empty((n_pairs + n_features, n_rows), dtype=xt.dtype)
    offset = 0
    for i in range(n_features):
        width = n_features - i
        np.multiply(xt[i], xt[i:], out=features[offset : offset + width])
        offset += width
    features[n_pairs:] = xt
    return features


def _features_tied(xt: np.ndarray) -> np.ndarray:
    return xt


def _features_diag(xt: np.ndarray) -> np.ndarray:
    return np.vstack([xt * xt, xt])


def _features_spherical(xt: np.ndarray) -> np.ndarray:
    return np.vstack([np.einsum("dn,dn->n", xt, xt)[None, :], xt])


_FEATURES = {
    "full": _features_full,
    "tied": _features_tied,
    "diag": _features_diag,
    "spherical": _features_spherical,
}


def _log_prob_from_features(
    xt: np.ndarray, features: np.ndarray, kernel: ScoringKernel
) -> np.ndarray:
    log_prob = kernel.coefficients.T @ features
    log_prob += kernel.constant[:, None]
    if kernel.tied_factor is not None:
        y = kernel.tied_factor.T @ xt
        log_prob -= 0.5 * np.einsum("dn,dn->n", y, y)[None, :]
    return log_prob


def weighted_log_prob(x: np.ndarray, kernel: ScoringKernel) -> np.ndarray:
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for a chunk of rows.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features), in the kernel's dtype

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_rows)
        Transposed: one row per component.
    """
    xt = np.ascontiguousarray(x.T)
    return _log_prob_from_features(xt, _FEATURES[kernel.covariance_type](xt), kernel)


def log_norm(log_prob: np.ndarray) -> np.ndarray:
    """``log p(x_n)``: log-sum-exp over components, shape (n_rows,).

    :func:`log_resp_normalize` without the responsibilities (``log_prob`` is
    overwritten all the same).
    """
    peak = log_prob.max(axis=0)
    if not np.isfinite(peak).all():
        peak[~np.isfinite(peak)] = 0.0
    log_prob -= peak
    np.exp(log_prob, out=log_prob)
    total = np.log(log_prob.sum(axis=0))
    total += peak
    return total


def log_resp_normalize(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over components, in place.

    Parameters
    ----------
    log_prob : ndarray of shape (n_components, n_rows)
        Weighted log-probabilities; overwritten with the responsibilities.

    Returns
    -------
    log_norm : ndarray of shape (n_rows,)
        ``log p(x_n)``.
    responsibilities : ndarray of shape (n_components, n_rows)
        The same buffer as ``log_prob``.
    """
    peak = log_prob.max(axis=0)
    peak[~np.isfinite(peak)] = 0.0
    log_prob -= peak
    np.exp(log_prob, out=log_prob)
    total = log_prob.sum(axis=0)
    log_prob /= total
    log_norm = np.log(total)
    log_norm += peak
    return log_norm, log_prob


# --- sufficient statistics -------------------------------------------------------


def _statistics_from_features(
    features: np.ndarray,
    weighted_resp: np.ndarray,
    covariance_type: str,
    n_features: int,
    log_likelihood: float,
) -> SufficientStatistics:
    """Unpack ``features @ responsibilities^T`` into the M-step's statistics.

    ``features`` is (n_feature_columns, n_rows), ``weighted_resp`` is
    (n_components, n_rows).
    """
    weighted_resp = weighted_resp.astype(features.dtype, copy=False)
    moments = (features @ weighted_resp.T).astype(np.float64, copy=False)
    resp_sum = weighted_resp.sum(axis=1, dtype=np.float64)
    weighted_x = moments[-n_features:].T
    n_components = weighted_resp.shape[0]
    if covariance_type == "full":
        rows, cols = np.triu_indices(n_features)
        second = np.empty((n_components, n_features, n_features))
        second[:, rows, cols] = moments[: len(rows)].T
        second[:, cols, rows] = moments[: len(rows)].T
    elif covariance_type == "diag":
        second = moments[:n_features].T
    elif covariance_type == "spherical":
        second = moments[0]
    else:  # tied: sum w x x^T does not depend on r; the fit computes it once
        second = np.zeros((n_features, n_features))
    return SufficientStatistics(resp_sum, weighted_x, second, log_likelihood)


# --- chunking and threads ------------------------------------------------------


def chunk_rows(n_features: int, n_components: int) -> int:
    """Rows per chunk so that the chunk's features and responsibilities stay about cache-sized."""
    width = _n_quadratic(n_features) + n_features + 2 * n_components
    return int(min(_MAX_CHUNK, max(_MIN_CHUNK, _CHUNK_BYTES // (8 * width))))


def _chunk_slices(n_samples: int, rows: int) -> list[slice]:
    return [slice(start, min(start + rows, n_samples)) for start in range(0, n_samples, rows)]


_controller: ThreadpoolController | None = None
_pool: ThreadPoolExecutor | None = None
_setup_lock = threading.Lock()


def _runtime() -> tuple[ThreadpoolController, ThreadPoolExecutor]:
    """The BLAS controller and the chunk thread pool, made once per process.

    Inspecting the loaded BLAS libraries costs milliseconds, so it is not
    redone on every pass.
    """
    global _controller, _pool
    with _setup_lock:
        if _controller is None:
            _controller = ThreadpoolController()
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_N_THREADS, thread_name_prefix="gmm-chunk")
    return _controller, _pool


_blas_pinned = False


def pin_blas_to_one_thread() -> None:
    """Hold BLAS to one thread for the rest of the process.

    For processes that run many small computations side by side (an API
    server): :func:`map_chunks` then skips setting the limit on every call,
    which costs more than scoring a few rows.
    """
    global _blas_pinned
    controller, _ = _runtime()
    controller.limit(limits=1, user_api="blas")
    _blas_pinned = True


_serial = threading.local()


@contextmanager
def serial_chunks() -> Iterator[None]:
    """Within this block, :func:`map_chunks` runs in the calling thread.

    For callers that already keep the cores busy with threads of their own
    (model selection fits several candidates at once).
    """
    previous = getattr(_serial, "active", False)
    _serial.active = True
    try:
        yield
    finally:
        _serial.active = previous


def map_chunks(function: Callable[[slice], T], n_samples: int, rows: int) -> Iterator[T]:
    """Apply ``function`` to each row slice, in threads, yielding in slice order."""
    slices = _chunk_slices(n_samples, rows)
    controller, pool = _runtime()
    with nullcontext() if _blas_pinned else controller.limit(limits=1, user_api="blas"):
        if len(slices) == 1 or _N_THREADS == 1 or getattr(_serial, "active", False):
            yield from map(function, slices)
        else:
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
    *,
    precise: bool = True,
) -> SufficientStatistics:
    """One fused pass: E-step under ``kernel`` and the M-step's sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), in the kernel's dtype
    sample_weight : ndarray of shape (n_samples,) or None
    precise : bool
        For float32 data: build the features and multiply them by the
        responsibilities in float64 (True), or in float32 (False: about twice
        as fast; the per-chunk sums are still added up in float64). Raw second
        moments lose digits to cancellation in the M-step, so the fit checks
        the float32 result and redoes the pass precisely when it cannot trust it.

    Returns
    -------
    stats : SufficientStatistics
        With ``log_likelihood = sum_n w_n log p(x_n)``.
    """
    n_samples, n_features = X.shape
    rows = chunk_rows(n_features, kernel.n_components)

    to_features = _FEATURES[kernel.covariance_type]

    def one_chunk(rows_slice: slice) -> SufficientStatistics:
        xt = np.ascontiguousarray(X[rows_slice].T)
        features = to_features(xt.astype(np.float64, copy=False) if precise else xt)
        e_features = features.astype(kernel.dtype, copy=False)
        log_norm, resp = log_resp_normalize(_log_prob_from_features(xt, e_features, kernel))
        if sample_weight is None:
            log_likelihood = float(np.sum(log_norm, dtype=np.float64))
        else:
            w = sample_weight[rows_slice]
            log_likelihood = float(np.dot(w, log_norm.astype(np.float64)))
            resp *= w.astype(resp.dtype)
        return _statistics_from_features(
            features, resp, kernel.covariance_type, n_features, log_likelihood
        )

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
        resp = responsibilities[rows_slice].T.astype(np.float64)
        if sample_weight is not None:
            resp = resp * sample_weight[rows_slice]
        xt = np.ascontiguousarray(X[rows_slice].T, dtype=np.float64)
        features = _FEATURES[covariance_type](xt)
        return _statistics_from_features(features, resp, covariance_type, n_features, 0.0)

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
