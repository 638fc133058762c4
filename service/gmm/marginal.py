"""Missing features: exact marginal and conditional mixtures, row by row.

A row ``x`` with observed features ``o`` and missing features ``m`` (NaN) has,
under a Gaussian mixture, the exact marginal density

    p(x_o) = sum_k pi_k N(x_o | mu_ko, S_k,oo)

(drop the rows and columns of each covariance), and the missing features
given the observed ones follow the conditional mixture

    p(x_m | x_o) = sum_k w_k(x_o) N(x_m | mu_km + S_k,mo S_k,oo^-1 (x_o - mu_ko),
                                       S_k,mm - S_k,mo S_k,oo^-1 S_k,om)

with ``w_k(x_o)`` proportional to ``pi_k N(x_o | mu_ko, S_k,oo)``.

Everything here is computed from the precision matrices ``P_k = U_k U_k^T``
and only their *missing* block ``P_k,mm``, which is small when few features
are missing. Fill the missing values with anything (here the mixture's mean),
and let ``d = x - mu_k`` and ``g = P_k d``; then

* the marginal quadratic form is ``d_o^T S_k,oo^-1 d_o = d^T g - g_m^T P_k,mm^-1 g_m``
  (the fill cancels out);
* ``log det S_k,oo = log det P_k,mm - 2 log det U_k``;
* the conditional covariance is ``P_k,mm^-1`` and the conditional mean is
  ``x_m - P_k,mm^-1 g_m`` (both equal to the Schur-complement formulas above).

For scoring, complete rows keep the chunked :class:`~.kernels.ScoringKernel`.
The other rows are sorted by (number of missing features, pattern):

* a pattern shared by enough rows gets its marginal mixture (from the
  covariance blocks ``S_k,oo``, the last 256 kept per model), which scores
  its rows centred and whitened, ``|(x_o - mu_ko) U_k|^2``;
* for each number ``m < D/2`` of missing features, the blocks ``P_k,mm`` of
  every pattern are factored together, one packed Cholesky factorisation
  vectorised over patterns and components; a row then costs its share of
  one matrix product (``g`` for every component) and a triangular solve of
  size ``m`` against its pattern's factor, so a batch in which every row has
  its own pattern is not factored row by row in Python;
* rows that miss at least half their features are factored on their
  observed side, ``[[S_oo, d_o], [d_o^T, 0]]`` row by row.

The subtraction ``d^T g - g_m^T P_k,mm^-1 g_m`` loses digits when a missing
feature is nearly determined by observed ones in an ill-conditioned model;
each row's rounding error is estimated from the size of the terms, and the
rows where it exceeds ``1e-12`` of the log-density are scored from ``S_oo``
instead.

For ``diag`` and ``spherical`` mixtures the features are independent within a
component, so none of this is needed: a missing feature's term is left out of
each component's log-density (the row scored with zeros in its place, less
what the zeros added), and each component's conditional of the missing
features is its own marginal. No ``(n_features, n_features)`` matrix is built.

The same factors give :func:`condition` (the conditional mixture of the
missing features), :func:`impute` (its mean and standard deviation) and
:func:`explain` (each feature's conditional surprise given the others).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from .covariance import log_det_cholesky, precisions_cholesky_from_covariances
from .errors import InvalidParameterError, NumericalError
from .kernels import ScoringKernel, chunk_rows, map_chunks, weighted_log_prob

__all__ = [
    "ConditionalMixture",
    "Explanations",
    "MissingDataKernel",
    "condition",
    "explain",
    "impute",
    "marginal_weighted_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2PI_E = _LOG_2PI + 1.0
# A pattern gets its own marginal mixture (for scoring) or is factored once
# for all its rows (conditionals) when it has at least this many rows and
# rows * (64 + m^3) reaches _SHARED_WORK (see _shared_patterns, _group_rows);
# the marginal mixtures of so many patterns are kept per model.
_MIN_SHARED_ROWS = 16
_SHARED_WORK = 1 << 14
_MARGINALS_KEPT = 256
# Covariance types whose components make the features independent: a marginal
# just leaves out the missing features' terms.
_INDEPENDENT = ("diag", "spherical")
# Rows per block: about this many float64 values in each (n_components, rows,
# n_features) temporary.
_BLOCK_VALUES = 1 << 17
# Patterns factored together for scoring: about this many float64 values in
# their packed factors.
_FACTOR_VALUES = 1 << 22


# --- dense matrices, per covariance type -------------------------------------------
#
# Covariances, or precision Cholesky factors, in scikit-learn's layout for the
# covariance type, as an (n_components, n_features, n_features) array.


def _dense_full(matrices: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
    return matrices


def _dense_tied(matrices: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
    return np.broadcast_to(matrices, (n_components, n_features, n_features))


def _dense_diag(matrices: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
    return matrices[:, :, None] * np.eye(n_features)


def _dense_spherical(matrices: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
    return matrices[:, None, None] * np.eye(n_features)


_DENSE: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "full": _dense_full,
    "tied": _dense_tied,
    "diag": _dense_diag,
    "spherical": _dense_spherical,
}


@dataclass(frozen=True)
class _MarginalMixture:
    """The marginal mixture over the ``observed`` features, for rows that miss the same ones.

    ``log pi_k + log N(x_o | k) = constant_k - 0.5 |(x_o - mu_ko) U_k|^2`` with
    ``U_k U_k^T = S_k,oo^-1``; the rows are centred on each component's mean
    before the product, so that nothing large cancels (the expanded quadratic
    form of :class:`~.kernels.ScoringKernel` loses digits in ill-conditioned
    models).
    """

    observed: np.ndarray
    means: np.ndarray
    factors: np.ndarray
    constant: np.ndarray

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(x_o | k)``, shape (n_components, n_rows), of complete rows ``x_o``."""
        whitened = np.matmul(x[None, :, :] - self.means[:, None, :], self.factors)
        whitened *= whitened
        return self.constant[:, None] - 0.5 * whitened.sum(axis=2)


@dataclass(frozen=True)
class MissingDataKernel:
    """A mixture's parameters laid out for rows with missing features.

    Attributes
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    weights, log_weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    precisions : ndarray of shape (n_components, n_features, n_features), or None
        ``P_k = U_k U_k^T`` (``full`` and ``tied``; None for ``diag`` and
        ``spherical``, whose features are independent within a component).
    covariances : ndarray of shape (n_components, n_features, n_features), or None
        ``S_k`` (``full`` and ``tied``; for rows missing most features).
    feature_precisions : ndarray of shape (n_components, n_features), or None
        ``1 / S_k,jj`` (``diag`` and ``spherical``).
    feature_constants : ndarray of shape (n_features, n_components), or None
        What feature ``j`` adds to ``log N(x | k)`` when ``x_j = 0``:
        ``0.5 log(P_kj / 2 pi) - 0.5 P_kj mu_kj^2`` (``diag`` and ``spherical``).
    log_det : ndarray of shape (n_components,)
        ``log det U_k`` (half the log-determinant of ``P_k``).
    scoring : ScoringKernel
        The complete-row kernel.
    fill : ndarray of shape (n_features,)
        The mixture's mean ``c``, put in place of missing values (any value
        gives the same answers); rows are centred on it, which keeps the
        expanded quadratic forms accurate.
    gradient : ndarray of shape (n_features + 1, (n_features + 1) * n_components), or None
        ``[x - c, 1] @ gradient`` holds, for every component, ``g = P_k (x - mu_k)``
        (the first ``n_features * n_components`` columns, as (n_features,
        n_components)) and ``(mu_k - c)^T g`` (the last ``n_components``)
        (``full`` and ``tied``).
    """

    covariance_type: str
    weights: np.ndarray
    log_weights: np.ndarray
    means: np.ndarray
    log_det: np.ndarray
    scoring: ScoringKernel
    fill: np.ndarray
    precisions: np.ndarray | None = None
    covariances: np.ndarray | None = None
    gradient: np.ndarray | None = None
    feature_precisions: np.ndarray | None = None
    feature_constants: np.ndarray | None = None
    _marginals: OrderedDict[bytes, _MarginalMixture] = field(
        default_factory=OrderedDict, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        weights: np.ndarray,
        means: np.ndarray,
        covariances: np.ndarray,
        precisions_cholesky: np.ndarray,
        covariance_type: str,
        scoring: ScoringKernel,
    ) -> MissingDataKernel:
        """Lay out the parameters (shapes as scikit-learn's ``GaussianMixture``)."""
        n_components, n_features = means.shape
        log_det = log_det_cholesky(precisions_cholesky, covariance_type, n_features)
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)
        fill = weights @ means / np.sum(weights)
        common = dict(
            covariance_type=covariance_type,
            weights=np.asarray(weights, dtype=np.float64),
            log_weights=log_weights,
            means=np.ascontiguousarray(means, dtype=np.float64),
            log_det=np.broadcast_to(log_det, (n_components,)).astype(np.float64),
            scoring=scoring,
            fill=fill,
        )
        if covariance_type in _INDEPENDENT:
            feature_precisions = np.broadcast_to(
                (precisions_cholesky**2).reshape(n_components, -1), (n_components, n_features)
            )
            constants = 0.5 * (
                np.log(feature_precisions) - _LOG_2PI - feature_precisions * means**2
            )
            return cls(
                **common,
                feature_precisions=np.ascontiguousarray(feature_precisions),
                feature_constants=np.ascontiguousarray(constants.T),
            )
        dense = _DENSE[covariance_type]
        factors = dense(precisions_cholesky, n_components, n_features)
        precisions = np.ascontiguousarray(factors @ np.transpose(factors, (0, 2, 1)))
        centred = means - fill
        shift = np.einsum("kde,ke->kd", precisions, centred)
        gradient = np.block(
            [
                [precisions.transpose(1, 2, 0).reshape(n_features, -1), shift.T],
                [-shift.T.reshape(1, -1), -np.einsum("kd,kd->k", centred, shift)[None, :]],
            ]
        )
        return cls(
            **common,
            precisions=precisions,
            covariances=np.ascontiguousarray(dense(covariances, n_components, n_features)),
            gradient=np.ascontiguousarray(gradient),
        )

    @property
    def independent(self) -> bool:
        """Whether features are independent within a component (``diag``, ``spherical``)."""
        return self.covariance_type in _INDEPENDENT

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    def marginal(self, missing: np.ndarray) -> _MarginalMixture:
        """The marginal mixture over the features not in ``missing``, laid out for scoring.

        Built from the covariance blocks ``S_k,oo`` and kept for the last
        :data:`_MARGINALS_KEPT` patterns asked for.

        Parameters
        ----------
        missing : ndarray of int, shape (m,)
            The missing features, in increasing order; at least one feature stays.
        """
        key = np.asarray(missing, dtype=np.intp).tobytes()
        with self._lock:
            if key in self._marginals:
                self._marginals.move_to_end(key)
                return self._marginals[key]
        observed = np.setdiff1d(np.arange(self.n_features), missing)
        precisions_cholesky = precisions_cholesky_from_covariances(
            self.covariances[:, observed[:, None], observed], "full"
        )
        log_det = log_det_cholesky(precisions_cholesky, "full", len(observed))
        marginal = _MarginalMixture(
            observed=observed,
            means=np.ascontiguousarray(self.means[:, observed]),
            factors=precisions_cholesky,
            constant=self.log_weights - 0.5 * len(observed) * _LOG_2PI + log_det,
        )
        with self._lock:
            self._marginals[key] = marginal
            while len(self._marginals) > _MARGINALS_KEPT:
                self._marginals.popitem(last=False)
        return marginal


# --- small linear algebra, vectorised over a batch ------------------------------
#
# Matrices are held as (m, m, *batch), vectors as (m, *batch): the loops run
# over the (small) matrix size and every step is one operation over the whole
# batch of rows and components. Batches broadcast, so one factor of shape
# (m, m, 1, K) serves every row of a shared pattern.


def _cholesky(A: np.ndarray, n_pivots: int, *, overwrite: bool = False) -> np.ndarray:
    """Cholesky factorisation of the leading ``n_pivots`` pivots of a batch of SPD matrices.

    Parameters
    ----------
    A : ndarray of shape (p, p, *batch)
    n_pivots : int
        At most ``p``.
    overwrite : bool
        Factor ``A`` in place (it is then the returned array).

    Returns
    -------
    factor : ndarray of shape (p, p, *batch)
        Its lower triangle's first ``n_pivots`` columns hold ``L`` (with
        ``L L^T`` the leading block) and, below it, ``A_21 L^-T``; its trailing
        block holds the Schur complement ``A_22 - A_21 A_11^-1 A_12``. Only
        the lower triangle of ``A`` is read; entries above the diagonal are
        left as they were.
    """
    factor = A if overwrite else A.copy()
    scratch = np.empty(factor.shape[1:])
    with np.errstate(invalid="ignore", divide="ignore"):  # checked once, at the end
        for j in range(n_pivots):
            pivot = np.sqrt(factor[j, j], out=factor[j, j])
            factor[j + 1 :, j] /= pivot
            for i in range(j + 1, len(factor)):  # the lower triangle only, in place
                update = np.multiply(factor[i, j], factor[j + 1 : i + 1, j], out=scratch[: i - j])
                np.subtract(factor[i, j + 1 : i + 1], update, out=factor[i, j + 1 : i + 1])
    if not np.all(np.diagonal(factor[:n_pivots, :n_pivots], axis1=0, axis2=1) > 0.0):
        raise NumericalError(
            "a block of a covariance or precision matrix is not positive definite; "
            "the model's covariances are too ill-conditioned"
        )
    return factor


def _half_log_det(cholesky: np.ndarray) -> np.ndarray:
    """``sum_j log L_jj`` of a batch of Cholesky factors (m, m, *batch): shape batch.

    One logarithm of the product of the pivots, unless that product leaves
    the floating-point range.
    """
    diagonal = np.diagonal(cholesky, axis1=0, axis2=1)
    product = np.prod(diagonal, axis=-1)
    if np.all(np.isfinite(product) & (product > 0.0)):
        return np.log(product)
    return np.sum(np.log(diagonal), axis=-1)


def _expand(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L`` with axes added so that it broadcasts against a right-hand side ``b``."""
    extra = b.ndim - (L.ndim - 1)
    return L.reshape(L.shape[:2] + (1,) * extra + L.shape[2:])


def _solve_lower(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-1 b`` for lower-triangular ``L`` (m, m, *batch) and ``b`` (m, *rhs, *batch)."""
    L = _expand(L, b)
    z = np.empty(np.broadcast_shapes(b.shape, L.shape[1:]))
    for i in range(len(z)):
        z[i] = (b[i] - np.sum(L[i, :i] * z[:i], axis=0)) / L[i, i]
    return z


def _solve_upper(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-T b`` for lower-triangular ``L`` (m, m, *batch) and ``b`` (m, *rhs, *batch)."""
    L = _expand(L, b)
    y = np.empty(np.broadcast_shapes(b.shape, L.shape[1:]))
    for i in reversed(range(len(y))):
        y[i] = (b[i] - np.sum(L[i + 1 :, i] * y[i + 1 :], axis=0)) / L[i, i]
    return y


# --- grouping rows by what they miss -------------------------------------------


@dataclass(frozen=True)
class _Group:
    """Rows factored together.

    ``missing`` is (n_rows, m): each row's missing features, or (1, m) when
    every row misses the same ones (then each block is factored once).
    """

    rows: np.ndarray
    missing: np.ndarray


def _pattern_codes(missing: np.ndarray) -> np.ndarray:
    """One sortable code per missingness pattern, shape (n_rows,).

    An unsigned integer up to 64 features, ``sum_j missing_j 2^j`` (one
    integer matrix-vector product; 16 or fewer features sort by radix),
    bytes beyond.
    """
    n_features = missing.shape[1]
    if n_features <= 64:
        size = next(size for size in (8, 16, 32, 64) if size >= n_features)
        weights = np.left_shift(np.uint64(1), np.arange(n_features, dtype=np.uint64))
        return missing.view(np.uint8) @ weights.astype(f"uint{size}")
    packed = np.packbits(missing, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()


def _split(rows: np.ndarray, missing: np.ndarray, block: int) -> list[_Group]:
    shared = len(missing) == 1
    return [
        _Group(rows[start : start + block], missing if shared else missing[start : start + block])
        for start in range(0, len(rows), block)
    ]


def _group_rows(missing: np.ndarray, block: int) -> list[_Group]:
    """Groups of rows with the same number of missing features, or the same pattern.

    A pattern is factored once for all its rows when it is common enough to
    pay for its own factorisation (about 200 us, the time of a few hundred
    rows factored one by one, each costing about ``64 + m^3``):
    ``count * (64 + m^3) >= _SHARED_WORK``.
    """
    n_missing = np.count_nonzero(missing, axis=1)
    codes = _pattern_codes(missing)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    m = n_missing[order[starts]]
    shared = (m == 0) | ((counts >= _MIN_SHARED_ROWS) & (counts * (64 + m**3) >= _SHARED_WORK))
    groups = []
    for start, count in zip(starts[shared], counts[shared], strict=True):
        rows = np.sort(order[start : start + count])
        groups += _split(rows, np.flatnonzero(missing[rows[0]])[None, :], block)
    rare = order[np.repeat(~shared, counts)]
    rare = rare[np.argsort(n_missing[rare].astype(np.uint16), kind="stable")]
    positions = np.flatnonzero(missing[rare])  # row-major, so each row's features in order
    columns = positions - np.repeat(np.arange(len(rare)) * missing.shape[1], n_missing[rare])
    start = 0
    for rows in _runs(rare, n_missing[rare]):
        m_rows = int(n_missing[rows[0]])
        stop = start + len(rows) * m_rows
        groups += _split(rows, columns[start:stop].reshape(len(rows), m_rows), block)
        start = stop
    return groups


def _runs(rows: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
    """``rows`` split where the (sorted) ``keys`` change."""
    if not rows.size:
        return []
    return np.split(rows, np.flatnonzero(np.diff(keys)) + 1)


def _block_rows(kernel: MissingDataKernel) -> int:
    return max(64, _BLOCK_VALUES // (kernel.n_components * kernel.n_features))


def _map_groups(function: Callable[[_Group], object], groups: list[_Group]) -> list:
    """``function`` on each group, over the core's chunk threads, in order."""
    return list(map_chunks(lambda s: function(groups[s.start]), len(groups), 1))


# --- the factors of one group ---------------------------------------------------


@dataclass(frozen=True)
class _Factors:
    """What one group of rows shares: every quantity the answers are made from.

    The missing values are filled (with ``kernel.fill``) and ``d = x - mu_k``
    is taken on the filled row. The answers do not depend on the fill: with
    ``g = P_k d``, the marginal quadratic form ``d^T g - g_m^T P_k,mm^-1 g_m``
    is the same for any ``d_m``.

    Attributes
    ----------
    log_prob : ndarray of shape (n_components, n_rows)
        ``log pi_k + log N(x_o | mu_ko, S_k,oo)``.
    gradient : ndarray of shape (n_rows, n_features, n_components)
        ``g = P_k d`` for every component.
    cholesky : ndarray of shape (m, m, n_rows or 1, n_components)
        Lower Cholesky factors of ``P_k,mm`` (entries above the diagonal unspecified).
    z : ndarray of shape (m, n_rows, n_components)
        ``cholesky^-1 g_m``.
    """

    log_prob: np.ndarray
    gradient: np.ndarray
    cholesky: np.ndarray
    z: np.ndarray


def _block(matrices: np.ndarray, features: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each row's block of per-component matrices over its ``features``.

    Parameters
    ----------
    matrices : ndarray of shape (n_components, n_features, n_features)
    features : ndarray of int, shape (n_rows or 1, m)
    out : ndarray of shape (p, p, n_rows or 1, n_components), p >= m, optional

    Returns
    -------
    block : ndarray of shape (m, m, n_rows or 1, n_components), or ``out``
        Only the lower triangle is filled in (it is all :func:`_cholesky`
        reads), into the leading block of ``out`` when given.
    """
    n_components, n_features, _ = matrices.shape
    m = features.shape[1]
    rows, cols = np.tril_indices(m)
    flat = matrices.reshape(n_components, -1).T
    if out is None:
        out = np.empty((m, m, len(features), n_components))
    out[rows, cols] = np.take(flat, features.T[rows] * n_features + features.T[cols], axis=0)
    return out


def _gather_gradient(gradient: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``g_m``: each row's missing entries of ``gradient`` (n_rows, D, K); shape (m, n_rows, K)."""
    n_rows, n_features, n_components = gradient.shape
    index = np.arange(n_rows) * n_features + missing.T
    return np.take(gradient.reshape(-1, n_components), index, axis=0)


def _factor(kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray) -> _Factors:
    """Factor one group: ``x`` (n_rows, n_features) with NaN, ``missing`` as in :class:`_Group`."""
    n_rows, n_features = x.shape
    m = missing.shape[1]
    n_components = kernel.n_components
    centred = np.subtract(x, kernel.fill)
    centred[np.isnan(centred)] = 0.0  # the fill
    products = np.hstack([centred, np.ones((n_rows, 1))]) @ kernel.gradient
    gradient = products[:, : n_features * n_components].reshape(n_rows, n_features, n_components)
    # d^T g = (x - c)^T g - (mu_k - c)^T g
    quadratic = np.matmul(centred[:, None, :], gradient)[:, 0, :] - products[:, -n_components:]
    log_prob = (
        kernel.log_weights + kernel.log_det - 0.5 * n_features * _LOG_2PI - 0.5 * quadratic
    ).T
    g_m = _gather_gradient(gradient, np.broadcast_to(missing, (n_rows, m)))
    if len(missing) == 1:  # one pattern: factor P_mm once, then solve for every row
        cholesky = _cholesky(_block(kernel.precisions, missing), m, overwrite=True)
        z = _solve_lower(cholesky, g_m)
        correction = np.sum(z**2, axis=0)
    else:  # a pattern per row: factor [[P_mm, g_m], [g_m^T, 0]] row by row
        bordered = _block(
            kernel.precisions, missing, out=np.empty((m + 1, m + 1, n_rows, n_components))
        )
        bordered[m, :m] = g_m
        bordered[m, m] = 0.0
        factor = _cholesky(bordered, m, overwrite=True)
        cholesky, z, correction = factor[:m, :m], factor[m, :m], -factor[m, m]
    log_det_mm = _half_log_det(cholesky)
    log_prob += (0.5 * m * _LOG_2PI - log_det_mm + 0.5 * correction).T
    return _Factors(log_prob, gradient, cholesky, z)


def _observed_log_prob(
    kernel: MissingDataKernel, x: np.ndarray, observed: np.ndarray
) -> np.ndarray:
    """``log pi_k + log N(x_o | mu_ko, S_k,oo)`` from ``S_k,oo`` itself.

    For rows that miss most features, where ``S_k,oo`` is the smaller block:
    ``[[S_oo, d_o], [d_o^T, 0]]`` is factored row by row, giving
    ``log det S_oo`` from the pivots and ``-d_o^T S_oo^-1 d_o`` in the corner.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
    observed : ndarray of int, shape (n_rows, o)

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_rows)
    """
    n_rows, o = observed.shape
    bordered = _block(
        kernel.covariances, observed, out=np.empty((o + 1, o + 1, n_rows, kernel.n_components))
    )
    bordered[o, :o] = np.take_along_axis(x, observed, axis=1).T[:, :, None]
    bordered[o, :o] -= kernel.means.T[observed.T]
    bordered[o, o] = 0.0
    factor = _cholesky(bordered, o, overwrite=True)
    half_log_det = _half_log_det(factor[:o, :o])
    return (kernel.log_weights - 0.5 * o * _LOG_2PI - half_log_det + 0.5 * factor[o, o]).T


def _independent_log_prob(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> np.ndarray:
    """``log pi_k + log N(x_o | k)`` for ``diag`` and ``spherical`` components.

    Each feature adds its own term to ``log N(x | k)``: score the row with
    the missing values set to 0 by the complete-row kernel, and take out what
    those zeros added (``kernel.feature_constants``).

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
    missing : ndarray of bool, shape (n_rows, n_features)

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_rows)
    """
    log_prob = weighted_log_prob(np.where(missing, 0.0, x), kernel.scoring)
    log_prob -= (missing.astype(np.float64) @ kernel.feature_constants).T
    return log_prob


# --- scoring --------------------------------------------------------------------
#
# Scoring sorts the incomplete rows by (number of missing features, pattern).
# Each pattern's blocks P_k,mm are factored once, all patterns with the same
# number m of missing features together (one vectorised Cholesky over
# patterns x components); a row then costs its share of one matrix product
# (g = P_k d for every component) and a triangular solve of size m with its
# pattern's factor, whatever the number of patterns.

# A row's rounding error in ``log N(x_o | k)`` is about
# ``_ROUNDING * eps * (|(x - c)^T g| + |(mu_k - c)^T g| + kappa * g_m^T P_k,mm^-1 g_m)``
# (the terms that are subtracted; ``kappa`` the ratio of the factor's largest to
# smallest pivot). Rows where that, weighted by the responsibilities, exceeds
# ``_RELATIVE_ERROR`` times the log-density are scored again from ``S_k,oo``
# (the cancellation happens when a missing feature is nearly determined by
# observed ones in an ill-conditioned model).
_ROUNDING = 8.0
_RELATIVE_ERROR = 1e-12


@dataclass(frozen=True)
class _Patterns:
    """Incomplete rows sorted by (number of missing features, pattern).

    Attributes
    ----------
    rows : ndarray of int, shape (n_rows,)
        Row indices, in sorted order.
    pattern : ndarray of int, shape (n_rows,)
        Each sorted row's pattern (an index into ``starts``).
    starts, counts : ndarray of int, shape (n_patterns,)
        Where each pattern's rows start in ``rows``, and how many there are.
    n_missing : ndarray of int, shape (n_patterns,)
        Each pattern's number of missing features (non-decreasing).
    """

    rows: np.ndarray
    pattern: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    n_missing: np.ndarray


def _sort_patterns(codes: np.ndarray, n_missing: np.ndarray) -> _Patterns:
    """Sort the incomplete rows by number of missing features, then by pattern.

    ``codes`` from :func:`_pattern_codes`. Two stable sorts of small integers
    (radix sorts up to 16 features).
    """
    order = np.argsort(codes, kind="stable")
    counts_dtype = np.uint8 if n_missing.max(initial=0) < 256 else np.uint32
    order = order[np.argsort(n_missing.astype(counts_dtype)[order], kind="stable")]
    order = order[len(order) - np.count_nonzero(n_missing) :]  # complete rows sort first
    codes = codes[order]
    change = np.empty(len(order), dtype=bool)
    change[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    return _Patterns(
        rows=order,
        pattern=np.cumsum(change) - 1,
        starts=starts,
        counts=np.diff(np.append(starts, len(order))),
        n_missing=n_missing[order[starts]].astype(np.intp),
    )


@dataclass(frozen=True)
class _PatternFactors:
    """The factors of ``P_k,mm`` of patterns with ``m`` missing features each.

    Attributes
    ----------
    missing : ndarray of int, shape (n_patterns, m)
    lower : ndarray of shape (m * (m + 1) / 2, n_patterns, n_components)
        The lower triangle of the Cholesky factor ``L`` of ``P_k,mm``, row by
        row, with each pivot replaced by its reciprocal.
    constant : ndarray of shape (n_patterns, n_components)
        ``log pi_k - 0.5 (D - m) log(2 pi) + log det U_k - log det L``.
    spread : ndarray of shape (n_components,)
        Largest over smallest pivot of any pattern's factor (a lower bound on
        the condition number of ``L``).
    """

    missing: np.ndarray
    lower: np.ndarray
    constant: np.ndarray
    spread: np.ndarray


def _factor_patterns(
    kernel: MissingDataKernel, missing: np.ndarray, *, observed_side: bool = False
) -> _PatternFactors:
    """Factor ``P_k,mm`` for every pattern (rows of ``missing``, (n_patterns, m)) and component.

    A Cholesky factorisation on the packed lower triangles, one entry of
    every pattern and component per NumPy operation (left-looking: each
    entry is finished from the ones before it). With ``observed_side``,
    ``missing`` holds each pattern's *observed* features instead and
    ``S_k,oo`` is factored (the constant is then that of ``N(x_o | k)``).
    """
    n_patterns, m = missing.shape
    n_components, n_features = kernel.n_components, kernel.n_features
    rows, cols = np.tril_indices(m)
    matrices = kernel.covariances if observed_side else kernel.precisions
    flat = matrices.reshape(n_components, -1).T  # (D * D, K)
    index = missing[:, rows] * n_features + missing[:, cols]  # (n_patterns, m(m+1)/2)
    lower = np.take(np.ascontiguousarray(flat), index.T, axis=0)  # (m(m+1)/2, n_patterns, K)
    scratch = np.empty((n_patterns, n_components))
    with np.errstate(invalid="ignore", divide="ignore"):  # checked once, at the end
        for i in range(m):
            row_i = i * (i + 1) // 2  # entries (i, 0..i) are contiguous
            for j in range(i + 1):
                row_j = j * (j + 1) // 2
                target = lower[row_i + j]
                if j == 1:
                    target -= np.multiply(lower[row_i], lower[row_j], out=scratch)
                elif j > 1:  # L_ij = A_ij - sum_k<j L_ik L_jk, one reduction over k
                    target -= np.einsum(
                        "kpc,kpc->pc", lower[row_i : row_i + j], lower[row_j : row_j + j]
                    )
                if j < i:
                    target *= lower[row_j + j]  # the reciprocal pivot
                else:
                    np.sqrt(target, out=target)
                    np.divide(1.0, target, out=target)
    reciprocal = lower[rows == cols]  # (m, n_patterns, K)
    if not np.all(reciprocal > 0.0):
        raise NumericalError(
            "a block of a covariance or precision matrix is not positive definite; "
            "the model's covariances are too ill-conditioned"
        )
    product = np.prod(reciprocal, axis=0)
    if np.all(np.isfinite(product) & (product > 0.0)):
        half_log_det = -np.log(product)
    else:
        half_log_det = -np.sum(np.log(reciprocal), axis=0)
    spread = np.max(reciprocal.max(axis=0) / reciprocal.min(axis=0), axis=0, initial=1.0)
    if observed_side:  # log N(x_o | k) = -0.5 o log(2 pi) - log det L - 0.5 |L^-1 d_o|^2
        constant = kernel.log_weights - 0.5 * m * _LOG_2PI
    else:
        constant = kernel.log_weights + kernel.log_det - 0.5 * (n_features - m) * _LOG_2PI
    return _PatternFactors(
        missing=missing, lower=lower, constant=constant - half_log_det, spread=spread
    )


def _pattern_log_prob(
    kernel: MissingDataKernel,
    x: np.ndarray,
    pattern: np.ndarray,
    factors: _PatternFactors,
) -> tuple[np.ndarray, np.ndarray]:
    """``log pi_k + log N(x_o | mu_ko, S_k,oo)`` of rows whose patterns are factored.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features), NaN where missing
    pattern : ndarray of int, shape (n_rows,)
        Each row's pattern in ``factors``.

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_rows)
    error : ndarray of shape (n_components, n_rows)
        The estimated rounding error of each entry (see :data:`_ROUNDING`).
    """
    n_rows, n_features = x.shape
    n_components = kernel.n_components
    centred = np.ones((n_rows, n_features + 1))
    np.subtract(x, kernel.fill, out=centred[:, :n_features])
    np.copyto(centred, 0.0, where=np.isnan(centred))  # the fill
    products = centred @ kernel.gradient  # (n_rows, (n_features + 1) * K)
    gradient = products[:, : n_features * n_components].reshape(n_rows, n_features, n_components)
    shift = products[:, -n_components:]
    # d^T g = (x - c)^T g - (mu_k - c)^T g
    expanded = np.matmul(centred[:, None, :n_features], gradient)[:, 0, :]
    index = factors.missing[pattern]
    index += (np.arange(n_rows) * (n_features + 1))[:, None]
    # g_m, then z = L^-1 g_m in its place, row by row of L (its pivots stored
    # inverted), the squares summed
    z = np.take(products.reshape(-1, n_components), index.T, axis=0)  # (m, n_rows, K)
    lower = np.take(factors.lower, pattern, axis=1)  # (m(m+1)/2, n_rows, K)
    correction = _solved_squares(z, lower)
    log_prob = np.take(factors.constant, pattern, axis=0)
    log_prob -= 0.5 * (expanded - shift - correction)
    magnitude = np.abs(expanded)
    magnitude += np.abs(shift)
    magnitude += factors.spread * correction
    magnitude *= 0.5 * _ROUNDING * np.finfo(np.float64).eps
    return np.ascontiguousarray(log_prob.T), np.ascontiguousarray(magnitude.T)


def _solved_squares(z: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """``|L^-1 z|^2`` per row and component, ``z`` overwritten by ``L^-1 z``.

    ``z``: shape (m, n_rows, K); ``lower``: each row's packed lower factor ``L``,
    shape (m(m+1)/2, n_rows, K), row by row, its pivots stored inverted.
    """
    squares = np.zeros(z.shape[1:])
    product = np.empty_like(squares)
    entry = 0
    for i in range(z.shape[0]):
        total = z[i]
        for j in range(i):
            total -= np.multiply(lower[entry], z[j], out=product)
            entry += 1
        total *= lower[entry]
        entry += 1
        squares += np.multiply(total, total, out=product)
    return squares


def _observed_pattern_log_prob(
    kernel: MissingDataKernel, x: np.ndarray, pattern: np.ndarray, factors: _PatternFactors
) -> np.ndarray:
    """``log pi_k + log N(x_o | mu_ko, S_k,oo)`` from the patterns' factors of ``S_k,oo``.

    For rows that miss at least half their features: ``factors`` from
    :func:`_factor_patterns` with ``observed_side``; each row is centred on
    each component's mean and solved against its pattern's factor (nothing
    is subtracted after the solve, so nothing cancels).

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_rows)
    """
    observed = factors.missing[pattern]  # (n_rows, o)
    z = np.take(kernel.means.T, observed.T, axis=0)  # mu_ko: (o, n_rows, K)
    np.subtract(np.take_along_axis(x, observed, axis=1).T[:, :, None], z, out=z)
    lower = np.take(factors.lower, pattern, axis=1)  # (o(o+1)/2, n_rows, K)
    quadratic = _solved_squares(z, lower)
    log_prob = np.take(factors.constant, pattern, axis=0)
    log_prob -= 0.5 * quadratic
    return np.ascontiguousarray(log_prob.T)


def _inaccurate(log_prob: np.ndarray, error: np.ndarray) -> np.ndarray:
    """Rows whose estimated error in ``log p(x_o)`` exceeds :data:`_RELATIVE_ERROR` of it.

    ``log_prob`` and ``error`` are (n_components, n_rows). The error of
    ``log p`` is the responsibility-weighted error of the components; it is
    only worked out for rows where some component's error is that large.
    """
    peak = log_prob.max(axis=0)
    tolerance = _RELATIVE_ERROR * np.maximum(1.0, np.abs(peak))
    suspect = np.flatnonzero(~(error.max(axis=0) <= tolerance))
    redo = np.zeros(log_prob.shape[1], dtype=bool)
    if suspect.size:
        weights = np.exp(log_prob[:, suspect] - peak[suspect])
        total = weights.sum(axis=0)
        expected_error = np.einsum("kn,kn->n", weights, error[:, suspect]) / total
        log_norm = np.log(total) + peak[suspect]
        redo[suspect] = ~(expected_error <= _RELATIVE_ERROR * np.maximum(1.0, np.abs(log_norm)))
    return redo


def _observed_columns(missing: np.ndarray) -> np.ndarray:
    """Each row's observed features (rows all observing the same number): (n_rows, o)."""
    return np.nonzero(~missing)[1].reshape(len(missing), -1)


def _shared_patterns(patterns: _Patterns) -> np.ndarray:
    """Patterns common enough to get the marginal mixture's own kernel (see :data:`_SHARED_WORK`)."""
    m = patterns.n_missing
    counts = patterns.counts
    return (counts >= _MIN_SHARED_ROWS) & (counts * (64 + m**3) >= _SHARED_WORK)


def _score_rows(kernel: MissingDataKernel, X: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """:func:`marginal_weighted_log_prob` for ``full`` and ``tied`` mixtures.

    Complete rows go through the complete-row kernel. The others are sorted
    by (number of missing features, pattern); each task gathers its rows in
    that order and fills a slice of a sorted result, which is put back in
    the rows' order once at the end.
    """
    n_components, n_features = kernel.n_components, kernel.n_features
    codes = _pattern_codes(missing)
    if codes.dtype.kind == "u":  # the number missing is the number of bits set
        n_missing = np.bitwise_count(codes)
    else:
        n_missing = np.count_nonzero(missing, axis=1)
    complete = np.flatnonzero(n_missing == 0)
    patterns = _sort_patterns(codes, n_missing)
    result = np.empty((n_components, len(patterns.rows)))
    complete_result = np.empty((n_components, len(complete)))
    tasks: list[Callable[[], None]] = []
    factor_tasks: list[Callable[[], None]] = []
    row_tasks: list[Callable[[], None]] = []
    factors: list[_PatternFactors | None] = []
    block = 2 * _block_rows(kernel)  # one (m, m) solve per row: twice the rows

    def complete_rows(rows: slice) -> Callable[[], None]:
        def run() -> None:
            complete_result[:, rows] = weighted_log_prob(X[complete[rows]], kernel.scoring)

        return run

    def shared_rows(rows: slice, marginal: _MarginalMixture) -> Callable[[], None]:
        def run() -> None:
            result[:, rows] = marginal.log_prob(X[patterns.rows[rows]][:, marginal.observed])

        return run

    def factor(run_index: int, columns: np.ndarray, observed_side: bool) -> Callable[[], None]:
        def run() -> None:
            factors[run_index] = _factor_patterns(kernel, columns, observed_side=observed_side)

        return run

    def factored_rows(
        rows: slice | np.ndarray, pattern: np.ndarray, run_index: int, observed_side: bool
    ):
        def run() -> None:
            x = X[patterns.rows[rows]]
            run_factors = factors[run_index]
            if observed_side:
                result[:, rows] = _observed_pattern_log_prob(kernel, x, pattern, run_factors)
                return
            part, error = _pattern_log_prob(kernel, x, pattern, run_factors)
            redo = _inaccurate(part, error)
            result[:, rows] = part
            if redo.any():  # cancellation: from S_oo instead
                again = np.arange(result.shape[1])[rows][redo]
                observed = _observed_columns(missing[patterns.rows[again]])
                result[:, again] = _observed_log_prob(kernel, x[redo], observed)

        return run

    chunk = chunk_rows(n_features, n_components)
    tasks += [complete_rows(slice(s, s + chunk)) for s in range(0, len(complete), chunk)]
    shared = _shared_patterns(patterns)
    for pattern in np.flatnonzero(shared):
        start, count = int(patterns.starts[pattern]), int(patterns.counts[pattern])
        marginal = kernel.marginal(np.flatnonzero(missing[patterns.rows[start]]))
        tasks += [
            shared_rows(slice(s, min(s + block, start + count)), marginal)
            for s in range(start, start + count, block)
        ]
    # The other patterns, a run of patterns with the same number of missing features at a time.
    bounds = np.flatnonzero(np.diff(patterns.n_missing)) + 1
    for first, stop in zip(np.r_[0, bounds], np.r_[bounds, len(patterns.starts)], strict=True):
        keep = np.flatnonzero(~shared[first:stop]) + first
        if not keep.size:
            continue
        m = int(patterns.n_missing[first])
        row_start = patterns.starts[first]
        row_stop = patterns.starts[stop - 1] + patterns.counts[stop - 1]
        rows = np.arange(row_start, row_stop)
        pattern = patterns.pattern[row_start:row_stop]
        contiguous = len(keep) == stop - first
        if not contiguous:  # leave out the shared patterns' rows
            kept = ~shared[pattern]
            rows, pattern = rows[kept], pattern[kept]
        local = np.full(stop - first, -1)  # the run's patterns, numbered from 0
        local[keep - first] = np.arange(len(keep))
        pattern = local[pattern - first]
        first_rows = missing[patterns.rows[patterns.starts[keep]]]
        # most features missing: S_oo is the smaller block
        observed_side = 2 * m >= n_features
        columns = np.nonzero(~first_rows if observed_side else first_rows)[1]
        columns = columns.reshape(len(keep), -1)
        side = columns.shape[1]
        per_pattern = side * (side + 1) // 2 * n_components
        patterns_per_factor = max(1, _FACTOR_VALUES // per_pattern)
        for low in range(0, len(keep), patterns_per_factor):  # bounded memory
            high = min(low + patterns_per_factor, len(keep))
            row_low, row_high = np.searchsorted(pattern, [low, high])
            factor_tasks.append(factor(len(factors), columns[low:high], observed_side))
            row_tasks += [
                factored_rows(
                    slice(row_start + s, min(row_start + s + block, row_start + row_high))
                    if contiguous
                    else rows[s : min(s + block, row_high)],
                    pattern[s : min(s + block, row_high)] - low,
                    len(factors),
                    observed_side,
                )
                for s in range(row_low, row_high, block)
            ]
            factors.append(None)
    # first the factors (and whatever needs none), then the rows that need them
    for phase in (factor_tasks + tasks, row_tasks):
        list(map_chunks(lambda s, phase=phase: phase[s.start](), len(phase), 1))
    log_prob = np.empty((n_components, len(X)))
    log_prob[:, complete] = complete_result
    log_prob[:, patterns.rows] = result
    return log_prob


def marginal_weighted_log_prob(
    kernel: MissingDataKernel, X: np.ndarray, missing: np.ndarray
) -> np.ndarray:
    """``log pi_k + log N(x_o | mu_ko, S_k,oo)`` of each row over its observed features.

    Parameters
    ----------
    kernel : MissingDataKernel
    X : ndarray of shape (n_samples, n_features)
        NaN where a feature is missing; every row has at least one observed feature.
    missing : ndarray of bool, shape (n_samples, n_features)
        ``np.isnan(X)``.

    Returns
    -------
    log_prob : ndarray of shape (n_components, n_samples)
        Transposed, as :func:`~.kernels.weighted_log_prob` returns it; log-sum-exp
        over the components gives ``log p(x_o)``, normalising gives the
        responsibilities.
    """
    if kernel.independent:
        rows = chunk_rows(kernel.n_features, kernel.n_components)
        parts = map_chunks(lambda s: _independent_log_prob(kernel, X[s], missing[s]), len(X), rows)
        return np.concatenate(list(parts), axis=1)
    return _score_rows(kernel, X, missing)


def _normalize(log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log p`` (n_rows,) and responsibilities (n_rows, n_components) from (K, n_rows)."""
    log_norm = logsumexp(log_prob, axis=0)
    return log_norm, np.exp(log_prob - log_norm).T


# --- conditionals ---------------------------------------------------------------


@dataclass(frozen=True)
class ConditionalMixture:
    """The mixture of one row's missing features given its observed ones.

    Attributes
    ----------
    missing : ndarray of int, shape (n_missing,)
        The missing features, in increasing order.
    weights : ndarray of shape (n_components,)
        ``pi_k N(x_o | k)`` normalised: the responsibilities of the observed part.
    means : ndarray of shape (n_components, n_missing)
        ``mu_km + S_k,mo S_k,oo^-1 (x_o - mu_ko)``.
    covariances : ndarray of shape (n_components, n_missing, n_missing)
        ``S_k,mm - S_k,mo S_k,oo^-1 S_k,om`` (full matrices for every covariance type).
    """

    missing: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def _conditional_moments(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (n_rows, K), means (n_rows, K, m) and covariances (n_rows|1, K, m, m) of a group."""
    moments = _independent_moments if kernel.independent else _block_moments
    return moments(kernel, x, missing)


def _independent_moments(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent features: each component's conditional is its own marginal on ``m``."""
    n_rows, m = len(x), missing.shape[1]
    _, weights = _normalize(_independent_log_prob(kernel, x, np.isnan(x)))
    means = np.broadcast_to(
        kernel.means[:, missing].transpose(1, 0, 2), (n_rows, kernel.n_components, m)
    )
    variances = 1.0 / kernel.feature_precisions[:, missing].transpose(1, 0, 2)
    covariances = np.zeros((*variances.shape, m))
    covariances[..., np.arange(m), np.arange(m)] = variances
    return weights, means, covariances


def _block_moments(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full and tied: the conditional mean is ``x_m - P_k,mm^-1 g_m`` (``x_m`` the fill).

    That is the Schur-complement formula rewritten with the precision matrix;
    the conditional covariance is ``P_k,mm^-1``.
    """
    factors = _factor(kernel, x, missing)
    m = missing.shape[1]
    _, weights = _normalize(factors.log_prob)
    shift = _solve_upper(factors.cholesky, factors.z)
    means = kernel.fill[missing][:, None, :] - shift.transpose(1, 2, 0)
    inverse = _solve_lower(factors.cholesky, np.eye(m).reshape(m, m, 1, 1))
    covariances = np.einsum("pink,pjnk->nkij", inverse, inverse)
    return weights, means, covariances


def _conditional_groups(kernel: MissingDataKernel, X: np.ndarray) -> list[_Group]:
    return _group_rows(np.isnan(X), _block_rows(kernel))


def condition(kernel: MissingDataKernel, X: np.ndarray) -> list[ConditionalMixture]:
    """The conditional mixture of each row's missing features given its observed ones.

    Parameters
    ----------
    kernel : MissingDataKernel
    X : ndarray of shape (n_samples, n_features)
        NaN where a feature is missing; every row has at least one observed feature.

    Returns
    -------
    conditionals : list of ConditionalMixture, one per row
        A complete row gets ``missing = []`` and its responsibilities as weights.
    """
    results: list[ConditionalMixture | None] = [None] * len(X)
    groups = _conditional_groups(kernel, X)

    def one_group(group: _Group):
        return _conditional_moments(kernel, X[group.rows], group.missing)

    for group, (weights, means, covariances) in zip(
        groups, _map_groups(one_group, groups), strict=True
    ):
        shared = len(group.missing) == 1
        for i, row in enumerate(group.rows):
            results[row] = ConditionalMixture(
                missing=group.missing[0 if shared else i].copy(),
                weights=weights[i],
                means=means[i],
                covariances=covariances[0 if shared else i],
            )
    return results  # type: ignore[return-value]


def impute(kernel: MissingDataKernel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each missing value replaced by its conditional mean (Gaussian mixture regression).

    Parameters
    ----------
    kernel : MissingDataKernel
    X : ndarray of shape (n_samples, n_features)
        NaN where a feature is missing.

    Returns
    -------
    X_filled : ndarray of shape (n_samples, n_features)
        The observed values unchanged, each missing one replaced by
        ``sum_k w_k m_k``, the mean of the conditional mixture.
    std : ndarray of shape (n_samples, n_features)
        The conditional mixture's standard deviation of each filled value,
        ``sqrt(sum_k w_k (C_k,jj + (m_kj - m_j)^2))``; NaN where the value was given.
    """
    filled = X.copy()
    std = np.full(X.shape, np.nan)
    groups = [group for group in _conditional_groups(kernel, X) if group.missing.shape[1]]

    def one_group(group: _Group):
        weights, means, covariances = _conditional_moments(kernel, X[group.rows], group.missing)
        mean = np.einsum("nk,nkm->nm", weights, means)
        variances = np.diagonal(covariances, axis1=-2, axis2=-1) + (means - mean[:, None, :]) ** 2
        return mean, np.sqrt(np.einsum("nk,nkm->nm", weights, variances))

    for group, (mean, spread) in zip(groups, _map_groups(one_group, groups), strict=True):
        missing = np.broadcast_to(group.missing, mean.shape)
        filled[group.rows[:, None], missing] = mean
        std[group.rows[:, None], missing] = spread
    return filled, std


# --- explanations ---------------------------------------------------------------


@dataclass(frozen=True)
class Explanations:
    """Each row's features, ordered by how much each makes the row unlikely.

    Attributes
    ----------
    features : ndarray of int, shape (n_samples, n_features)
        Feature indices, largest contribution first; missing features last.
    contributions : ndarray of shape (n_samples, n_features)
        The contribution of ``features[i, r]`` to row ``i`` (see :func:`explain`);
        NaN for missing features.
    """

    features: np.ndarray
    contributions: np.ndarray


def _contributions(kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Contribution of every feature of a group's rows, shape (n_rows, n_features).

    From, per component, ``log pi_k + log p_k(x_o)`` and, for each observed
    feature ``j``, ``Q_jj`` and ``(Q d_o)_j`` with ``Q`` the precision of the
    marginal over the observed features: ``x_j`` given the others has mean
    ``x_j - (Q d_o)_j / Q_jj`` and variance ``1 / Q_jj``.
    """
    n_rows, m = len(x), missing.shape[1]
    terms = _independent_terms if kernel.independent else _block_terms
    log_prob, g, diagonal = terms(kernel, x, missing)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_diagonal = np.log(diagonal)
        # log pi_k + log p_k(x without feature j): (K, n_rows, D)
        log_prob_without = (
            log_prob[:, :, None] + 0.5 * (_LOG_2PI - log_diagonal) + 0.5 * g**2 / diagonal
        )
        log_norm_without = logsumexp(log_prob_without, axis=0)
        weights = np.exp(log_prob_without - log_norm_without)
        entropy = 0.5 * np.sum(weights * (_LOG_2PI_E - log_diagonal), axis=0)
        surprise = log_norm_without - logsumexp(log_prob, axis=0)[:, None]
    contributions = surprise - entropy
    if m:
        contributions[np.arange(n_rows)[:, None], np.broadcast_to(missing, (n_rows, m))] = np.nan
    return contributions


def _independent_terms(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent features: ``Q_jj = P_kj`` and ``(Q d_o)_j = P_kj (x_j - mu_kj)``."""
    precisions = kernel.feature_precisions[:, None, :]
    log_prob = _independent_log_prob(kernel, x, np.isnan(x))
    return log_prob, precisions * (x[None, :, :] - kernel.means[:, None, :]), precisions


def _block_terms(
    kernel: MissingDataKernel, x: np.ndarray, missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full and tied: ``Q = P_oo - P_om P_mm^-1 P_mo`` from the group's factors.

    Returns ``log_prob`` (K, n_rows), ``Q d_o`` (K, n_rows, D) and the
    diagonal of ``Q`` (K, n_rows or 1, D).
    """
    n_rows, n_features = x.shape
    m = missing.shape[1]
    factors = _factor(kernel, x, missing)
    g = factors.gradient.transpose(2, 0, 1)
    diagonal = np.diagonal(kernel.precisions, axis1=1, axis2=2)[:, None, :]
    if m:
        # Marginal precision Q = P_oo - P_om P_mm^-1 P_mo and Q d_o = g_o - P_om P_mm^-1 g_m,
        # through V = L^-1 P_m,: of shape (m, D, n|1, K).
        rows_m = kernel.precisions[:, missing].transpose(2, 3, 1, 0)
        v = np.broadcast_to(
            _solve_lower(factors.cholesky, rows_m), (m, n_features, n_rows, kernel.n_components)
        )
        g = g - np.einsum("pjnk,pnk->knj", v, factors.z)
        diagonal = diagonal - np.einsum("pjnk,pjnk->knj", v, v)
    return factors.log_prob, g, diagonal


def explain(kernel: MissingDataKernel, X: np.ndarray) -> Explanations:
    """How much each feature makes each row unlikely, given the row's other features.

    The contribution of feature ``j`` to row ``x`` is its conditional surprise
    given the row's other observed features, less the surprise expected there:

        c_j = -log p(x_j | x_-j) - sum_k w_jk 0.5 log(2 pi e s_jk^2)

    where ``p(x_j | x_-j) = sum_k w_jk N(x_j | m_jk, s_jk^2)`` is the mixture
    conditional on the other features (``w_jk`` the components'
    responsibilities for ``x_-j``). The first term is exactly how much the
    anomaly score ``-log p(x)`` falls when ``x_j`` is treated as missing; the
    second is the entropy each responsible component expects of ``x_j``, which
    makes ``c_j`` independent of the features' units. For one component
    ``c_j = (z_j^2 - 1) / 2`` with ``z_j`` the conditional z-score of ``x_j``.

    Parameters
    ----------
    kernel : MissingDataKernel
    X : ndarray of shape (n_samples, n_features)
        NaN where a feature is missing (explained over the observed ones).

    Returns
    -------
    explanations : Explanations
        Features ordered by contribution, largest first.

    Raises
    ------
    InvalidParameterError
        If the model has fewer than two features.
    """
    if kernel.n_features < 2:
        raise InvalidParameterError(
            "explanations need a model with at least two features: one feature alone "
            "has nothing to be explained against"
        )
    contributions = np.empty(X.shape)
    groups = _conditional_groups(kernel, X)

    def one_group(group: _Group) -> np.ndarray:
        return _contributions(kernel, X[group.rows], group.missing)

    for group, part in zip(groups, _map_groups(one_group, groups), strict=True):
        contributions[group.rows] = part
    order = np.argsort(np.where(np.isnan(contributions), np.inf, -contributions), axis=1)
    return Explanations(order, np.take_along_axis(contributions, order, axis=1))
