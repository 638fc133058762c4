"""Model selection: fit a grid of (n_components, covariance_type) and pick the best.

For every candidate in the grid the selection

1. starts EM several times: from the hierarchical agglomeration of the data cut
   at ``K`` clusters (as mclust's ``Mclust`` does, see :mod:`.hierarchical`), and
   from ``n_init`` starts of ``init_params`` (k-means by default). The starts of
   one ``K`` are computed once and shared by every covariance type: they are
   partitions of the data, which do not depend on the covariance type;
2. runs EM from each start and keeps the most likely fit that is not spurious
   (the most likely spurious one when every start is);
3. scores the result: the total log-likelihood, scikit-learn's ``bic()`` and
   ``aic()``, and mclust's ICL (BIC plus twice the entropy of the
   responsibilities), in scikit-learn's sign (lower is better);
4. flags it as *spurious* when a component has collapsed onto a handful of
   points: fewer than ``n_features + 1`` effective points (``N_k``), or a
   variance at the ``reg_covar`` floor. A spurious candidate cannot win.

Candidates run in parallel threads (``n_jobs``) with BLAS held to one thread
each. A candidate whose every start collapses is reported with its error; the
others go on.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.special import xlogy
from threadpoolctl import threadpool_limits

from ._validation import check_data, check_sample_weight
from .covariance import COVARIANCE_TYPES, n_parameters
from .em import FitConfig, FitProgress, FitResult, estimate_parameters, fit_mixture
from .errors import (
    CollapsedComponentError,
    FitCancelled,
    GMMError,
    InvalidParameterError,
)
from .hierarchical import agglomerate
from .initialization import initial_responsibilities
from .kernels import (
    chunk_rows,
    log_resp_normalize,
    map_chunks,
    serial_chunks,
    weighted_log_prob,
)
from .mixture import MixtureParameters

__all__ = [
    "CRITERIA",
    "DEFAULT_TOL",
    "Candidate",
    "SelectionProgress",
    "SelectionResult",
    "select_mixture",
]

CRITERIA = ("bic", "aic", "icl")

# Selection compares likelihoods across candidates, so it converges further than
# a single fit's default (scikit-learn's 1e-3 leaves up to ~1 of BIC on the table).
DEFAULT_TOL = 1e-5
# Rows the hierarchical agglomeration sees at most (mclust's default subset).
_MAX_AGGLOMERATED = 2000
# The hierarchical starts: Ward's agglomeration of mclust's SVD-scaled data and
# of the data as they are.
_HIERARCHICAL_STARTS = {"hierarchical svd": "svd", "hierarchical": "none"}


# --- results --------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One fitted (or failed) cell of the grid.

    Attributes
    ----------
    n_components, covariance_type :
        The model.
    converged, n_iter :
        Of the kept start's EM.
    log_likelihood : float or None
        Total (weighted) log-likelihood of the data under the fitted parameters.
    n_parameters : int
        Free parameters, as scikit-learn counts them.
    bic, aic, icl : float or None
        Lower is better.
    seconds : float
        Wall-clock time spent on this candidate (starts shared with other
        covariance types are not counted).
    error : dict or None
        ``{"type", "detail"}`` when every start failed.
    spurious : bool
        A component collapsed onto a handful of points; the candidate cannot win.
    spurious_reason : str or None
    start : str or None
        Which start the kept fit came from (``"hierarchical"``, ``"kmeans 1"``, ...).
    """

    n_components: int
    covariance_type: str
    converged: bool = False
    n_iter: int = 0
    log_likelihood: float | None = None
    n_parameters: int = 0
    bic: float | None = None
    aic: float | None = None
    icl: float | None = None
    seconds: float = 0.0
    error: dict[str, str] | None = None
    spurious: bool = False
    spurious_reason: str | None = None
    start: str | None = None

    @property
    def eligible(self) -> bool:
        """Fitted and not spurious: it may win."""
        return self.error is None and not self.spurious

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "converged": self.converged,
            "n_iter": self.n_iter,
            "log_likelihood": self.log_likelihood,
            "n_parameters": self.n_parameters,
            "bic": self.bic,
            "aic": self.aic,
            "icl": self.icl,
            "seconds": self.seconds,
            "error": self.error,
            "spurious": self.spurious,
            "spurious_reason": self.spurious_reason,
            "start": self.start,
        }


@dataclass(frozen=True)
class SelectionResult:
    """The grid's table, and the winner with its fit.

    Attributes
    ----------
    criterion : {'bic', 'aic', 'icl'}
    candidates : list of Candidate
        In grid order: for each ``n_components``, each covariance type.
    best : Candidate
        The eligible candidate with the lowest criterion.
    fit : FitResult
        The winner's fit: parameters, converged, n_iter, lower_bound, history.
    """

    criterion: str
    candidates: list[Candidate]
    best: Candidate
    fit: FitResult

    @property
    def parameters(self) -> MixtureParameters:
        """The winner's fitted parameters."""
        return self.fit.parameters

    def to_dict(self) -> dict[str, Any]:
        """The job's ``result``: ``{"criterion", "best", "candidates"}``."""
        return {
            "criterion": self.criterion,
            "best": {
                "n_components": self.best.n_components,
                "covariance_type": self.best.covariance_type,
            },
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class SelectionProgress:
    """What the progress callback hears.

    Once when a candidate starts (``iteration == 0``, ``lower_bound`` None),
    then after every EM iteration of its starts.

    Attributes
    ----------
    n_components, covariance_type :
        The candidate being fitted.
    index : int
        Its position in the grid, ``0 .. total-1``.
    total : int
        Candidates in the grid.
    completed : int
        Candidates finished so far (they may finish out of order).
    start, n_starts : int
        Which EM start is running, of how many (``n_starts`` is 0 in the
        first call, before the candidate's starts are ready). Distinct starts
        differ by ``K``: a start repeating another is skipped.
    iteration, max_iter : int
    lower_bound : float or None
    """

    n_components: int
    covariance_type: str
    index: int
    total: int
    completed: int
    start: int
    n_starts: int
    iteration: int
    max_iter: int
    lower_bound: float | None


SelectionCallback = Callable[[SelectionProgress], Any]


# --- checks ---------------------------------------------------------------------


def _check_grid(
    n_components: Sequence[int],
    covariance_types: Sequence[str],
    criterion: str,
    n_effective: int,
) -> tuple[list[int], list[str]]:
    problems = []
    ks = list(dict.fromkeys(n_components))
    types = list(dict.fromkeys(covariance_types))
    if not ks:
        problems.append("n_components must list at least one number of components")
    bad_k = [k for k in ks if not (isinstance(k, int | np.integer) and k >= 1)]
    if bad_k:
        problems.append(f"n_components must be integers >= 1; got {bad_k!r}")
    too_many = [int(k) for k in ks if k not in bad_k and k > n_effective]
    if too_many:
        problems.append(
            f"n_components {too_many} exceed the number of samples with positive weight "
            f"({n_effective})"
        )
    if not types:
        problems.append("covariance_types must list at least one covariance type")
    unknown = [t for t in types if t not in COVARIANCE_TYPES]
    if unknown:
        problems.append(f"covariance_types must be among {COVARIANCE_TYPES}; got {unknown!r}")
    if criterion not in CRITERIA:
        problems.append(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    if problems:
        raise InvalidParameterError("; ".join(problems))
    return [int(k) for k in ks], types


# --- scoring and the spurious flag ----------------------------------------------


def _log_likelihood_and_entropy(
    parameters: MixtureParameters, X: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[float, float]:
    """Total log-likelihood and entropy of the responsibilities, in one pass.

    entropy = -sum_n w_n sum_k r_nk log r_nk.
    """
    kernel = parameters.kernel

    def one_chunk(rows: slice) -> tuple[float, float]:
        log_norm, resp = log_resp_normalize(weighted_log_prob(X[rows], kernel))
        per_row_entropy = -xlogy(resp, resp).sum(axis=0)
        if sample_weight is None:
            return float(log_norm.sum()), float(per_row_entropy.sum())
        w = sample_weight[rows]
        return float(w @ log_norm), float(w @ per_row_entropy)

    rows = chunk_rows(parameters.n_features, parameters.n_components)
    parts = list(map_chunks(one_chunk, len(X), rows))
    return math.fsum(p[0] for p in parts), math.fsum(p[1] for p in parts)


def _smallest_variances_full(covariances: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh(covariances)[:, 0]


def _smallest_variances_tied(covariances: np.ndarray) -> np.ndarray:
    return np.linalg.eigvalsh(covariances)[:1]


def _smallest_variances_diag(covariances: np.ndarray) -> np.ndarray:
    return covariances.min(axis=1)


def _smallest_variances_spherical(covariances: np.ndarray) -> np.ndarray:
    return covariances


# Per component (one value for tied): the smallest variance in any direction.
_SMALLEST_VARIANCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "full": _smallest_variances_full,
    "tied": _smallest_variances_tied,
    "diag": _smallest_variances_diag,
    "spherical": _smallest_variances_spherical,
}


def spurious_reason(
    parameters: MixtureParameters, total_weight: float, reg_covar: float, data_scale: float
) -> str | None:
    """Why a fitted mixture is a spurious maximum, or None.

    A component is collapsed when it holds fewer than ``n_features + 1``
    effective points (``N_k = weight_k * total_weight``), or when its smallest
    variance is at the ``reg_covar`` floor: no more than ``2 * reg_covar`` plus
    rounding noise (``1e-12`` of the data's largest variance, ``data_scale``).
    """
    nk = parameters.weights * total_weight
    few = np.flatnonzero(nk < parameters.n_features + 1)
    if few.size:
        k = int(few[0])
        return (
            f"component {k} holds {nk[k]:.3g} effective points, fewer than "
            f"n_features + 1 = {parameters.n_features + 1}"
        )
    smallest = _SMALLEST_VARIANCES[parameters.covariance_type](parameters.covariances)
    floor = 2.0 * reg_covar + 1e-12 * data_scale
    flat = np.flatnonzero(smallest <= floor)
    if flat.size:
        where = (
            "the shared covariance"
            if parameters.covariance_type == "tied"
            else (f"component {int(flat[0])}")
        )
        return (
            f"{where} has a variance of {smallest[flat[0]]:.3g}, at the reg_covar floor "
            f"({reg_covar:g}): it collapsed onto repeated or too few points"
        )
    return None


# --- one candidate --------------------------------------------------------------


@dataclass
class _Data:
    """The data and what every candidate shares."""

    X: np.ndarray
    sample_weight: np.ndarray | None
    total_weight: float
    data_scale: float
    base: FitConfig


# A start: its name, the rows its partition covers (None: all), and the
# partition as responsibilities of shape (n_rows, n_components).
_Start = tuple[str, np.ndarray | None, np.ndarray]


def _hard_labels(resp: np.ndarray) -> np.ndarray | None:
    """The cluster of each row, when the responsibilities are a hard partition."""
    labels = resp.argmax(axis=1)
    hard = np.array_equal(resp.sum(axis=1), np.ones(len(resp))) and np.all(
        resp[np.arange(len(resp)), labels] == 1.0
    )
    return labels if hard else None


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label vectors split the rows alike, whatever the clusters are called."""
    pairs = np.unique(np.stack([a, b]), axis=1).shape[1]
    return pairs == len(np.unique(a)) == len(np.unique(b))


def _repeats(start: _Start, earlier: _Start) -> bool:
    """Whether ``earlier`` already partitions every row ``start`` covers the same way.

    Such a start would run EM from the M-step of the same clusters (estimated,
    for a subset start, from fewer of their rows): the same start.
    """
    (_, rows, resp), (_, earlier_rows, earlier_resp) = start, earlier
    labels, earlier_labels = _hard_labels(resp), _hard_labels(earlier_resp)
    if labels is None or earlier_labels is None:
        return False
    if earlier_rows is None:
        return _same_partition(labels, earlier_labels if rows is None else earlier_labels[rows])
    if rows is not None and np.array_equal(rows, earlier_rows):
        return _same_partition(labels, earlier_labels)
    return False


def _distinct(starts: list[_Start]) -> list[_Start]:
    """The starts that do not repeat an earlier one."""
    kept: list[_Start] = []
    for start in starts:
        if not any(_repeats(start, earlier) for earlier in kept):
            kept.append(start)
    return kept


@dataclass
class _Reporter:
    """Serialises callback calls from the candidate threads; carries cancellation."""

    callback: SelectionCallback | None
    total: int
    max_iter: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    cancelled: threading.Event = field(default_factory=threading.Event)
    completed: int = 0

    def report(self, progress: dict[str, Any]) -> None:
        if self.cancelled.is_set():
            raise FitCancelled("the selection was asked to stop")
        if self.callback is None:
            return
        with self.lock:
            stop = self.callback(
                SelectionProgress(
                    total=self.total, completed=self.completed, max_iter=self.max_iter, **progress
                )
            )
        if stop:
            self.cancelled.set()
            raise FitCancelled("the selection was asked to stop")

    def done(self) -> None:
        with self.lock:
            self.completed += 1


def _start_parameters(
    data: _Data, rows: np.ndarray | None, resp: np.ndarray, covariance_type: str
) -> MixtureParameters:
    """The M-step of a start's partition (of a subset of rows, or of all)."""
    X = data.X if rows is None else data.X[rows]
    w = (
        data.sample_weight
        if rows is None or data.sample_weight is None
        else data.sample_weight[rows]
    )
    return estimate_parameters(
        X, resp, covariance_type=covariance_type, reg_covar=data.base.reg_covar, sample_weight=w
    )


def _fit_candidate(
    data: _Data,
    starts: Future,
    n_components: int,
    covariance_type: str,
    index: int,
    reporter: _Reporter,
) -> tuple[Candidate, FitResult | None]:
    """EM from every start of this ``K``; keep the most likely non-spurious fit."""
    where = {"n_components": n_components, "covariance_type": covariance_type, "index": index}
    reporter.report({**where, "start": 0, "n_starts": 0, "iteration": 0, "lower_bound": None})
    partitions: list[_Start] = starts.result()
    began = time.perf_counter()
    config = replace(
        data.base, n_components=n_components, covariance_type=covariance_type, n_init=1
    )

    def callback_for(start: int) -> Callable[[FitProgress], bool]:
        def callback(progress: FitProgress) -> bool:
            reporter.report(
                {
                    **where,
                    "start": start,
                    "n_starts": len(partitions),
                    "iteration": progress.iteration,
                    "lower_bound": progress.lower_bound,
                }
            )
            return False

        return callback

    kept: tuple[tuple[bool, float], str, FitResult] | None = None
    error: GMMError | None = None
    for start, (name, rows, resp) in enumerate(partitions):
        try:
            fit = fit_mixture(
                data.X,
                config,
                sample_weight=data.sample_weight,
                warm_start=_start_parameters(data, rows, resp, covariance_type),
                callback=callback_for(start),
            )
        except CollapsedComponentError as exc:
            error = exc
            continue
        # Non-spurious first, then the most likely (as n_init keeps the best).
        preference = (_spurious(data, fit.parameters) is None, fit.lower_bound)
        if kept is None or preference > kept[0]:
            kept = (preference, name, fit)
    if kept is None:
        error = error or CollapsedComponentError(None)
        candidate = Candidate(
            n_components,
            covariance_type,
            n_parameters=n_parameters(n_components, data.X.shape[1], covariance_type),
            error={"type": error.kind, "detail": str(error)},
        )
        fit = None
    else:
        _, name, fit = kept
        candidate = _score(data, fit, name)
    reporter.done()
    return replace(candidate, seconds=time.perf_counter() - began), fit


def _spurious(data: _Data, parameters: MixtureParameters) -> str | None:
    return spurious_reason(parameters, data.total_weight, data.base.reg_covar, data.data_scale)


def _score(data: _Data, fit: FitResult, start: str) -> Candidate:
    parameters = fit.parameters
    log_likelihood, entropy = _log_likelihood_and_entropy(parameters, data.X, data.sample_weight)
    p = parameters.n_parameters
    bic = -2.0 * log_likelihood + p * math.log(data.total_weight)
    reason = _spurious(data, parameters)
    return Candidate(
        parameters.n_components,
        parameters.covariance_type,
        converged=fit.converged,
        n_iter=fit.n_iter,
        log_likelihood=log_likelihood,
        n_parameters=p,
        bic=bic,
        aic=-2.0 * log_likelihood + 2.0 * p,
        icl=bic + 2.0 * entropy,
        spurious=reason is not None,
        spurious_reason=reason,
        start=start,
    )


# --- starts ---------------------------------------------------------------------


def _kmeans_starts(data: _Data, n_components: int, reporter: _Reporter) -> list[_Start]:
    base = data.base
    seed = None if base.random_state is None else [base.random_state, n_components]
    rng = np.random.default_rng(seed)
    starts = []
    for i in range(base.n_init):
        if reporter.cancelled.is_set():
            raise FitCancelled("the selection was asked to stop")
        resp = initial_responsibilities(
            data.X, n_components, base.init_params, data.sample_weight, rng
        )
        starts.append((f"{base.init_params} {i + 1}", None, resp))
    return starts


# --- the grid -------------------------------------------------------------------


def select_mixture(
    X: object,
    *,
    n_components: Sequence[int],
    covariance_types: Sequence[str] = COVARIANCE_TYPES,
    criterion: str = "bic",
    base: FitConfig | None = None,
    sample_weight: object = None,
    callback: SelectionCallback | None = None,
    n_jobs: int | None = None,
    hierarchical: bool = True,
) -> SelectionResult:
    """Fit every (n_components, covariance_type) pair and choose the best.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : sequence of int
        The numbers of components to try (duplicates are dropped).
    covariance_types : sequence of {'full', 'tied', 'diag', 'spherical'}
        Defaults to all four.
    criterion : {'bic', 'aic', 'icl'}
        Lower is better; scikit-learn's ``bic()`` and ``aic()``, mclust's ICL.
    base : FitConfig, optional
        ``tol``, ``reg_covar``, ``max_iter``, ``n_init``, ``init_params``,
        ``random_state`` and ``dtype`` for every fit (its ``n_components`` and
        ``covariance_type`` are ignored). Defaults to ``FitConfig(tol=1e-5)``:
        comparing candidates wants well-converged likelihoods.
    sample_weight : array-like of shape (n_samples,), optional
    callback : callable, optional
        Called with a :class:`SelectionProgress` when a candidate starts and
        after every EM iteration; calls are serialised (never concurrent). A
        truthy return value stops the selection with :class:`FitCancelled`.
    n_jobs : int, optional
        Candidates fitted at once, in threads; defaults to the number of CPUs
        (at most 4).
    hierarchical : bool
        Also start EM from the hierarchical agglomeration (default).

    Returns
    -------
    SelectionResult

    Raises
    ------
    InvalidDataError, InvalidParameterError, FitCancelled
    CollapsedComponentError
        When no candidate could be fitted without collapsing.
    """
    base = base or FitConfig(tol=DEFAULT_TOL)
    X = check_data(X, dtype=np.float64 if base.dtype == "float64" else np.float32)
    weights = check_sample_weight(sample_weight, len(X))
    n_effective = len(X) if weights is None else int(np.count_nonzero(weights))
    ks, types = _check_grid(n_components, covariance_types, criterion, n_effective)
    total_weight = float(len(X) if weights is None else weights.sum())
    data = _Data(X, weights, total_weight, float(np.max(np.var(X, axis=0))), base)
    cells = [(k, t) for k in ks for t in types]
    reporter = _Reporter(callback, len(cells), base.max_iter)
    n_jobs = max(1, min(n_jobs or min(4, os.cpu_count() or 1), len(cells)))

    # Candidate threads share the cores; BLAS stays on one thread in each. With
    # one job, the kernels split each pass over their own threads instead. The starts are
    # queued first (the pool is first in, first out), so no task waits on one
    # that is not yet running.
    executor = _CandidateThreads(n_jobs) if n_jobs > 1 else _InlineExecutor()
    with threadpool_limits(limits=1, user_api="blas"), executor as pool:
        trees = {}
        if hierarchical:
            seed = None if base.random_state is None else [base.random_state]
            cuts = [k for k in ks if k <= min(n_effective, _MAX_AGGLOMERATED)]
            trees = {
                name: pool.submit(
                    agglomerate,
                    X,
                    cuts,
                    sample_weight=weights,
                    transform=transform,
                    max_samples=_MAX_AGGLOMERATED,
                    rng=np.random.default_rng(seed),
                )
                for name, transform in _HIERARCHICAL_STARTS.items()
            }
        kmeans = {k: pool.submit(_kmeans_starts, data, k, reporter) for k in ks}

        def starts_of(k: int) -> list[_Start]:
            cuts = [(name, tree.result()) for name, tree in trees.items()]
            return _distinct(
                kmeans[k].result()
                + [
                    (name, tree.rows, tree.responsibilities(k))
                    for name, tree in cuts
                    if k in tree.labels
                ]
            )

        starts = {k: pool.submit(starts_of, k) for k in ks}
        # The costliest candidates first, so the threads finish together.
        order = sorted(range(len(cells)), key=lambda i: -_cost(*cells[i], X.shape[1]))
        futures = {
            i: pool.submit(_fit_candidate, data, starts[cells[i][0]], *cells[i], i, reporter)
            for i in order
        }
        try:
            outcomes = [futures[i].result() for i in range(len(cells))]
        except BaseException:
            reporter.cancelled.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    candidates = [c for c, _ in outcomes]
    eligible = [i for i, c in enumerate(candidates) if c.eligible]
    if not eligible:
        raise CollapsedComponentError(None)
    winner = min(eligible, key=lambda i: getattr(candidates[i], criterion))
    return SelectionResult(criterion, candidates, candidates[winner], outcomes[winner][1])


class _CandidateThreads(ThreadPoolExecutor):
    """Threads that each keep their chunks to themselves: the parallelism is
    across candidates, so the kernels' own chunk threads would only contend."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        def serially() -> Any:
            with serial_chunks():
                return fn(*args, **kwargs)

        return super().submit(serially)


class _InlineExecutor(Executor):
    """Runs each task at once in the calling thread (``n_jobs=1``)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _cost(n_components: int, covariance_type: str, n_features: int) -> float:
    columns = {
        "full": n_features * (n_features + 3) / 2,
        "tied": n_features,
        "diag": 2 * n_features,
        "spherical": n_features + 1,
    }
    return n_components * columns[covariance_type]
