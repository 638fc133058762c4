"""Out-of-core EM: the fit of :mod:`.em` over data read chunk by chunk.

The data are a sequence of row chunks, each read by a small picklable
zero-argument callable (:class:`ChunkedData`); no more than a few chunks are in
memory at once, whatever the number of rows. The fit runs the same M-step and
the same convergence loop as :func:`.em.fit_mixture`, and each EM iteration is
one pass over the chunks with the same fused kernel
(:func:`.kernels.e_step_statistics` on each chunk), the chunks' sufficient
statistics added up. From the same initial parameters it gives the in-memory
fit's answer up to rounding (the sums are added in another order).

The passes, in the order they run:

1. **Summary**: the rows' (weighted) sum, per-column minimum and maximum, and
   the rows of the initialisation sample. Gives the centre (the weighted mean;
   EM is run on centred rows, as in memory) and the largest deviation from it.
2. **Tied second moment** (``covariance_type='tied'`` only): ``sum w x x^T``
   of the centred rows.
3. **EM iterations**: one pass each.

**Initialisation from a sample.** Unless all of ``weights_init``,
``means_init`` and ``precisions_init`` are given (or ``warm_start``), the
usual initialisation (``config.init_params``: k-means and the rest) runs in
memory on a uniform random sample of ``init_sample_size`` rows (default
100 000; all rows if there are fewer), drawn without replacement with
``config.random_state``: the number of sampled rows of each chunk is drawn
from the hypergeometric distribution, then the rows within the chunk, so the
sample is gathered during the summary pass without a pass of its own. The
initial weights, means and covariances are those the sample's responsibilities
imply; EM then runs on all rows.

Where the chunks' passes run is the ``chunk_map``'s business: here, one after
the other in this process (:func:`local_chunk_map`); on a Dask cluster, the
reader running on the Dask worker (:mod:`.on_dask`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ._validation import check_data, check_sample_weight
from .covariance import SufficientStatistics
from .em import (
    _DTYPES,
    FitConfig,
    FitResult,
    ProgressCallback,
    _checked_scale,
    _checked_start,
    _fit_starts,
    _initial_parameters,
    _Moments,
    _noise_floor,
    _Start,
)
from .errors import InvalidDataError, InvalidParameterError
from .kernels import ScoringKernel, e_step_statistics, tied_second_moment
from .mixture import MixtureParameters
from .pvalues import MAX_EXACT_SCORES, ScoreDistribution

__all__ = [
    "DEFAULT_INIT_SAMPLE_SIZE",
    "ArrayChunk",
    "ChunkMap",
    "ChunkReader",
    "ChunkedData",
    "NpyChunk",
    "fit_chunked",
    "local_chunk_map",
    "score_chunked",
]

DEFAULT_INIT_SAMPLE_SIZE = 100_000

T = TypeVar("T")

ChunkReader = Callable[[], np.ndarray]
"""Reads one chunk: ``reader()`` is an ndarray of shape (n_rows, n_features).
Picklable, so that a Dask worker can call it where the data are read."""


# --- the data, as chunks ---------------------------------------------------------


@dataclass(frozen=True)
class ChunkedData:
    """A matrix of shape (n_samples, n_features) held as row chunks.

    Attributes
    ----------
    readers : sequence of ChunkReader
        ``readers[i]()`` returns chunk ``i``, of shape (chunk_rows[i], n_features).
    chunk_rows : sequence of int
        Rows of each chunk, in order.
    n_features : int
    """

    readers: Sequence[ChunkReader]
    chunk_rows: Sequence[int]
    n_features: int

    def __post_init__(self) -> None:
        if len(self.readers) != len(self.chunk_rows) or not self.readers:
            raise InvalidDataError("the data need at least one chunk, and one row count per chunk")
        if any(int(rows) < 0 for rows in self.chunk_rows) or self.n_features < 1:
            raise InvalidDataError("chunk row counts must be >= 0 and n_features >= 1")

    @property
    def n_samples(self) -> int:
        return int(sum(self.chunk_rows))

    @property
    def offsets(self) -> np.ndarray:
        """First row of each chunk, and the row count at the end: shape (n_chunks + 1,)."""
        return np.concatenate([[0], np.cumsum(self.chunk_rows, dtype=np.int64)])

    def tasks(
        self, *per_chunk: Sequence[Any], shared: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """One task per chunk for a :data:`ChunkMap`: ``(reader, index, rows,
        n_features, per_chunk[0][i], ..., *shared)``."""
        return [
            (reader, i, int(rows), self.n_features, *(column[i] for column in per_chunk), *shared)
            for i, (reader, rows) in enumerate(zip(self.readers, self.chunk_rows, strict=True))
        ]

    @classmethod
    def from_array(cls, X: np.ndarray, rows: int) -> ChunkedData:
        """Chunks of ``rows`` rows (the last one shorter) of an in-memory array."""
        X = check_data(X, dtype=np.float64)
        starts = range(0, len(X), rows)
        return cls(
            [ArrayChunk(X[start : start + rows]) for start in starts],
            [min(start + rows, len(X)) - start for start in starts],
            X.shape[1],
        )

    @classmethod
    def from_npy(cls, paths: Sequence[str | Path]) -> ChunkedData:
        """One chunk per ``.npy`` file (2-D float64), read lazily through a memory map."""
        shapes = [np.load(path, mmap_mode="r").shape for path in paths]
        if not shapes or any(len(s) != 2 or s[1] != shapes[0][1] for s in shapes):
            raise InvalidDataError("the .npy chunks must be 2-D with the same number of columns")
        return cls([NpyChunk(str(path)) for path in paths], [s[0] for s in shapes], shapes[0][1])


@dataclass(frozen=True)
class ArrayChunk:
    """Rows already in memory (a view of a bigger array; pickling it copies only these).

    Attributes
    ----------
    rows : ndarray of shape (n_rows, n_features)
        Read-only to callers.
    """

    rows: np.ndarray

    def __call__(self) -> np.ndarray:
        return self.rows


@dataclass(frozen=True)
class NpyChunk:
    """One ``.npy`` file, memory-mapped read-only (pages are read as the rows are used)."""

    path: str

    def __call__(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


# --- where the chunks' passes run ------------------------------------------------

ChunkMap = Callable[[Callable[..., T], Sequence[tuple[Any, ...]], Callable[[T, T], T]], T]
"""``chunk_map(function, tasks, combine)``: ``apply_to_chunk(function, *task)`` for
every task (one per chunk, in order), the results combined pairwise by
``combine`` (associative, not commutative: adjacent results, in order)."""


def apply_to_chunk(
    function: Callable[..., T], reader: ChunkReader, index: int, rows: int, n_features: int, *args
) -> T:
    """``function(chunk, *args)`` on the chunk ``reader`` reads, after checking its shape."""
    chunk = np.asarray(reader())
    if chunk.shape != (rows, n_features):
        raise InvalidDataError(
            f"chunk {index} has shape {chunk.shape}; expected ({rows}, {n_features})"
        )
    return function(chunk, *args)


def local_chunk_map(
    function: Callable[..., T], tasks: Sequence[tuple[Any, ...]], combine: Callable[[T, T], T]
) -> T:
    """The chunks one after the other in this process (the kernels thread each one)."""
    return reduce(combine, (apply_to_chunk(function, *task) for task in tasks))


# --- the per-chunk work ----------------------------------------------------------


@dataclass
class _Summary:
    """The summary pass's result for a run of chunks.

    ``weighted_sum``, ``minimum`` and ``maximum`` have shape (n_features,);
    ``sample`` has shape (n_sampled, n_features).
    """

    weighted_sum: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    sample: list[np.ndarray] = field(default_factory=list)

    def __add__(self, other: _Summary) -> _Summary:
        return _Summary(
            self.weighted_sum + other.weighted_sum,
            np.minimum(self.minimum, other.minimum),
            np.maximum(self.maximum, other.maximum),
            self.sample + other.sample,
        )

    def centre(self, total_weight: float) -> tuple[np.ndarray, float]:
        """The weighted mean of the rows and their largest distance from it in any
        feature; :class:`InvalidDataError` if a value is NaN or infinite."""
        if not (np.all(np.isfinite(self.minimum)) and np.all(np.isfinite(self.maximum))):
            raise InvalidDataError("the data contain NaN or infinite values")
        center = self.weighted_sum / total_weight
        return center, float(np.max(np.maximum(self.maximum - center, center - self.minimum)))


def _summarise(
    chunk: np.ndarray, sample_weight: np.ndarray | None, sample_rows: np.ndarray
) -> _Summary:
    if len(chunk) == 0:
        empty = np.full(chunk.shape[1], np.inf)
        return _Summary(np.zeros(chunk.shape[1]), empty, -empty, [])
    weighted_sum = (
        chunk.sum(axis=0, dtype=np.float64)
        if sample_weight is None
        else sample_weight @ chunk.astype(np.float64, copy=False)
    )
    sample = [np.array(chunk[sample_rows], dtype=np.float64)] if len(sample_rows) else []
    return _Summary(weighted_sum, chunk.min(axis=0), chunk.max(axis=0), sample)


def _centred(chunk: np.ndarray, center: np.ndarray, dtype: type) -> np.ndarray:
    """``chunk - center`` in ``dtype``, as :func:`.em.fit_mixture` centres (a new array)."""
    return np.subtract(chunk, center.astype(dtype), dtype=dtype)


def _tied_part(
    chunk: np.ndarray, sample_weight: np.ndarray | None, center: np.ndarray, dtype: type
) -> np.ndarray:
    return tied_second_moment(_centred(chunk, center, dtype), sample_weight)


def _chunk_statistics(
    chunk: np.ndarray,
    sample_weight: np.ndarray | None,
    center: np.ndarray,
    kernel: ScoringKernel,
    precise: bool,
) -> SufficientStatistics:
    return e_step_statistics(
        _centred(chunk, center, kernel.dtype), sample_weight, kernel, precise=precise
    )


def _add(a: T, b: T) -> T:
    return a + b  # type: ignore[operator]


# --- the fit -------------------------------------------------------------------


def _sample_plan(
    chunk_rows: Sequence[int], size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Rows of each chunk in a uniform sample of ``size`` rows without replacement."""
    remaining_rows, remaining_size = int(sum(chunk_rows)), min(size, int(sum(chunk_rows)))
    if remaining_size == remaining_rows:  # every row, and no draw from rng
        return [np.arange(rows) for rows in chunk_rows]
    plan = []
    for rows in chunk_rows:
        taken = (
            int(rng.hypergeometric(rows, remaining_rows - rows, remaining_size))
            if remaining_size and rows
            else 0
        )
        plan.append(np.sort(rng.choice(rows, size=taken, replace=False)))
        remaining_rows -= rows
        remaining_size -= taken
    return plan


def fit_chunked(
    data: ChunkedData,
    config: FitConfig | None = None,
    *,
    sample_weight: object = None,
    weights_init: object = None,
    means_init: object = None,
    precisions_init: object = None,
    warm_start: MixtureParameters | None = None,
    warm_start_lower_bound: float = -np.inf,
    init_sample_size: int = DEFAULT_INIT_SAMPLE_SIZE,
    callback: ProgressCallback | None = None,
    chunk_map: ChunkMap | None = None,
) -> FitResult:
    """Fit a Gaussian mixture by EM to data read chunk by chunk.

    Parameters
    ----------
    data : ChunkedData
        The rows, of shape (n_samples, n_features) in all, as chunks.
    config : FitConfig
        Defaults to ``FitConfig()``.
    sample_weight : array-like of shape (n_samples,), optional
        Held in memory (8 bytes a row); each chunk gets its slice.
    weights_init : array-like of shape (n_components,), optional
    means_init : array-like of shape (n_components, n_features), optional
    precisions_init : array-like, optional
        Shape by ``covariance_type``, as scikit-learn's ``precisions_init``.
    warm_start : MixtureParameters, optional
    warm_start_lower_bound : float, optional
        As in :func:`.em.fit_mixture`.
    init_sample_size : int
        Rows of the uniform random sample the initialisation runs on (see the
        module's docstring); unused when the initial parameters are given.
    callback : callable, optional
        Called with a :class:`.em.FitProgress` after every iteration; a truthy
        return value stops the fit with :class:`.errors.FitCancelled`.
    chunk_map : ChunkMap, optional
        Where the chunks' passes run; default :func:`local_chunk_map`.

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidDataError, InvalidParameterError, CollapsedComponentError,
    NumericalError, FitCancelled
    """
    config = config or FitConfig()
    chunk_map = chunk_map or local_chunk_map
    dtype = _DTYPES[config.dtype]
    n_samples, n_features = data.n_samples, data.n_features
    if init_sample_size < 1:
        raise InvalidParameterError("init_sample_size must be >= 1")
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
    rng = np.random.default_rng(config.random_state)
    needs_sample = warm_start is None and (
        weights_init is None or means_init is None or precisions_init is None
    )
    plan = _sample_plan(data.chunk_rows, init_sample_size if needs_sample else 0, rng)
    offsets = data.offsets
    chunk_weights = [
        None if weights is None else weights[offsets[i] : offsets[i + 1]]
        for i in range(len(data.readers))
    ]

    summary: _Summary = chunk_map(_summarise, data.tasks(chunk_weights, plan), _add)
    total_weight = float(n_samples if weights is None else weights.sum())
    center, largest = summary.centre(total_weight)
    scale = _checked_scale(largest, config, n_features)
    tied_moment = None
    if config.covariance_type == "tied":
        tied_moment = chunk_map(_tied_part, data.tasks(chunk_weights, shared=(center, dtype)), _add)
    moments = _Moments(n_samples, total_weight, center, tied_moment, _noise_floor(scale), dtype)

    def statistics(kernel: ScoringKernel, precise: bool) -> SufficientStatistics:
        return chunk_map(
            _chunk_statistics, data.tasks(chunk_weights, shared=(center, kernel, precise)), _add
        )

    sample = sample_weight_of_sample = sample_tied = None
    if needs_sample:
        sample = _centred(np.concatenate(summary.sample), center, dtype)
        if weights is not None:
            rows = np.concatenate([offsets[i] + chosen for i, chosen in enumerate(plan)])
            sample_weight_of_sample = weights[rows]
        if tied_moment is not None:
            sample_tied = tied_second_moment(sample, sample_weight_of_sample)

    def start(init: int) -> _Start:
        return _initial_parameters(
            sample,  # type: ignore[arg-type]  (only read when an initial parameter is missing)
            sample_weight_of_sample,
            center,
            config,
            rng,
            sample_tied,
            moments.noise_floor,
            weights_init,
            means_init,
            precisions_init,
        )

    return _fit_starts(
        statistics, start, moments, config, callback, warm_start, warm_start_lower_bound
    )


# --- after the fit: the training data's scores, chunk by chunk -------------------


@dataclass
class _ScorePart:
    """One run of chunks' share of the training statistics."""

    total_log_likelihood: float  # weighted
    score_sum: float  # over rows of positive weight
    kept: list[np.ndarray] = field(default_factory=list)

    def __add__(self, other: _ScorePart) -> _ScorePart:
        return _ScorePart(
            self.total_log_likelihood + other.total_log_likelihood,
            self.score_sum + other.score_sum,
            self.kept + other.kept,
        )


def _score_part(
    chunk: np.ndarray,
    sample_weight: np.ndarray | None,
    parameters: MixtureParameters,
    kept_rows: np.ndarray | None,
) -> _ScorePart:
    log_likelihood = parameters.score_samples(chunk)
    if sample_weight is None:
        total, positive = float(log_likelihood.sum()), log_likelihood
    else:
        total = float(sample_weight @ log_likelihood)
        positive = log_likelihood[sample_weight > 0]
    scores = -positive
    kept = scores if kept_rows is None else scores[kept_rows]
    return _ScorePart(total, float(scores.sum()), [kept])


def score_chunked(
    parameters: MixtureParameters,
    data: ChunkedData,
    sample_weight: np.ndarray | None = None,
    *,
    max_exact: int | None = None,
    random_state: int | None = 0,
    chunk_map: ChunkMap | None = None,
) -> tuple[float, float, ScoreDistribution]:
    """BIC, AIC and the training scores' distribution of a fit, in one pass over the chunks.

    What :meth:`.MixtureParameters.information_criteria` and
    :meth:`.pvalues.ScoreDistribution.from_scores` give on the whole matrix:
    the same sample of scores (the rows ``from_scores`` would draw, gathered
    chunk by chunk), sums added in another order.

    Parameters
    ----------
    parameters : MixtureParameters
    data : ChunkedData
        The training rows, of shape (n_samples, n_features) in all.
    sample_weight : ndarray of shape (n_samples,), optional
    max_exact, random_state
        As for :meth:`.pvalues.ScoreDistribution.from_scores`.

    Returns
    -------
    bic : float
    aic : float
    scores : ScoreDistribution
        May hold non-finite values if the data overflow the model; the caller checks.
    """
    chunk_map = chunk_map or local_chunk_map
    max_exact = MAX_EXACT_SCORES if max_exact is None else max_exact
    weights = check_sample_weight(sample_weight, data.n_samples)
    offsets = data.offsets
    chunk_weights = [
        None if weights is None else weights[offsets[i] : offsets[i + 1]]
        for i in range(len(data.readers))
    ]
    positive_rows = [
        int(rows) if w is None else int(np.count_nonzero(w > 0))
        for rows, w in zip(data.chunk_rows, chunk_weights, strict=True)
    ]
    n_positive = sum(positive_rows)
    if n_positive == 0:
        raise InvalidDataError("training scores need at least one row of positive weight")
    exact = n_positive <= max_exact
    kept_rows: list[np.ndarray | None] = [None] * len(positive_rows)
    if not exact:  # the rows Generator.choice(scores, max_exact) draws, chunk by chunk
        drawn = np.random.default_rng(random_state).integers(0, n_positive, size=max_exact)
        starts = np.concatenate([[0], np.cumsum(positive_rows)])
        kept_rows = [
            drawn[(drawn >= starts[i]) & (drawn < starts[i + 1])] - starts[i]
            for i in range(len(positive_rows))
        ]
    tasks = data.tasks(chunk_weights, [parameters] * len(kept_rows), kept_rows)
    part: _ScorePart = chunk_map(_score_part, tasks, _add)
    n_samples = float(data.n_samples if weights is None else weights.sum())
    bic = -2.0 * part.total_log_likelihood + parameters.n_parameters * math.log(n_samples)
    aic = -2.0 * part.total_log_likelihood + 2.0 * parameters.n_parameters
    scores = ScoreDistribution(
        np.sort(np.concatenate(part.kept)), n_positive, part.score_sum / n_positive, exact
    )
    return bic, aic, scores
