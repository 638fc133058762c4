"""How unusual an anomaly score is, and whether live traffic still looks like training.

The anomaly score of a row is its negative log-likelihood under the mixture.
:class:`ScoreDistribution` keeps the training points' scores (those of rows
with positive sample weight, each row counted once, as the stored
``anomaly_threshold`` counts them) and turns a score ``s`` into a p-value:

    p(s) = (k + 1) / (n + 1),    k = #{training scores >= s}

the fraction of training points at least as extreme, with the +1 that makes
it a valid p-value for a row from the training distribution
(``P(p <= alpha) <= alpha``). Up to :data:`MAX_EXACT_SCORES` training rows it is
exact. Beyond, it keeps a sorted sample of that many scores drawn uniformly with
replacement, whose empirical distribution is within
``sqrt(ln(2 / delta) / (2 m))`` of the training scores' everywhere with
probability ``1 - delta`` (Dvoretzky-Kiefer-Wolfowitz, with Massart's constant;
``m = 1,000,000`` gives 0.0016 at ``delta = 0.01``).

:class:`ScoreReservoir` keeps a bounded uniform sample of the scores served
(reservoir sampling), and :func:`drift` compares it with the training scores
(two-sample Kolmogorov-Smirnov).
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import InvalidDataError, InvalidParameterError

__all__ = [
    "MAX_EXACT_SCORES",
    "Drift",
    "ScoreDistribution",
    "ScoreReservoir",
    "check_contamination",
    "drift",
]

MAX_EXACT_SCORES = 1_000_000
# A reservoir folds pending batches in once this many scores wait.
_PENDING = 4096


def check_contamination(contamination: float) -> float:
    """``contamination`` as a float in (0, 0.5], or :class:`InvalidParameterError`."""
    value = float(contamination)
    if not 0.0 < value <= 0.5:
        raise InvalidParameterError(f"contamination must be in (0, 0.5]; got {contamination!r}")
    return value


@dataclass(frozen=True, eq=False)
class ScoreDistribution:
    """The training points' anomaly scores, for p-values and thresholds.

    Attributes
    ----------
    scores : ndarray of shape (n_kept,)
        Sorted: every training score (``exact``), or a uniform sample of them.
    n_training : int
        Training rows with positive weight.
    mean_score : float
        Their mean anomaly score (``-mean log-likelihood``), over all of them.
    exact : bool
        Whether ``scores`` holds every training score.
    """

    scores: np.ndarray
    n_training: int
    mean_score: float
    exact: bool

    @classmethod
    def from_scores(
        cls,
        scores: object,
        sample_weight: object = None,
        *,
        max_exact: int = MAX_EXACT_SCORES,
        random_state: int | None = 0,
    ) -> ScoreDistribution:
        """Keep the training scores (or a uniform sample of ``max_exact`` of them).

        Parameters
        ----------
        scores : array-like of shape (n_samples,)
            Each training point's anomaly score, ``-log p(x)``.
        sample_weight : array-like of shape (n_samples,), optional
            Rows of zero weight are left out; the others count once each.
        max_exact : int
            Most scores kept; more are sampled down to this many.
        random_state : int or None
            Seeds the sample (the same seed keeps the same scores).
        """
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if sample_weight is not None:
            scores = scores[np.asarray(sample_weight, dtype=np.float64).ravel() > 0]
        if scores.size == 0 or not np.all(np.isfinite(scores)):
            raise InvalidDataError("training scores must be finite, with at least one of them")
        exact = scores.size <= max_exact
        kept = scores if exact else np.random.default_rng(random_state).choice(scores, max_exact)
        return cls(np.sort(kept), int(scores.size), float(scores.mean()), exact)

    @property
    def n_kept(self) -> int:
        return int(self.scores.size)

    def error_bound(self, delta: float = 0.01) -> float:
        """Bound on ``|p-value - exact p-value|`` holding with probability ``1 - delta``.

        0 when exact; otherwise DKW's ``sqrt(ln(2 / delta) / (2 n_kept))`` plus the
        ``1 / (n_kept + 1)`` of the +1 correction.
        """
        if self.exact:
            return 0.0
        return math.sqrt(math.log(2.0 / delta) / (2.0 * self.n_kept)) + 1.0 / (self.n_kept + 1)

    def p_values(self, scores: object) -> np.ndarray:
        """Fraction of training points whose score is at least each score, as (k+1)/(n+1).

        Parameters
        ----------
        scores : array-like of shape (n_rows,)

        Returns
        -------
        p_values : ndarray of shape (n_rows,)
            In ``[1 / (n_kept + 1), 1]``; NaN scores give NaN.
        """
        scores = np.asarray(scores, dtype=np.float64)
        at_least = self.n_kept - np.searchsorted(self.scores, scores, side="left")
        p_values = (at_least + 1.0) / (self.n_kept + 1.0)
        return np.where(np.isnan(scores), np.nan, p_values)

    def threshold(self, contamination: float) -> float:
        """The (1 - contamination) quantile of the training scores (``np.quantile``'s).

        Equal to the ``anomaly_threshold`` stored at fit time for the same
        contamination when the distribution is exact.

        Raises
        ------
        InvalidParameterError
            If ``contamination`` is not in (0, 0.5].
        """
        return float(np.quantile(self.scores, 1.0 - check_contamination(contamination)))

    def stored_threshold(self, contamination: float) -> float:
        """The threshold a model stores for its own ``contamination``, which may be 0.

        A model configured with ``contamination=0`` flags no training point: its
        threshold is the highest training score. Otherwise :meth:`threshold`.
        """
        if contamination == 0:
            return float(self.scores.max())
        return self.threshold(contamination)

    # --- serialisation ------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """An ``.npz`` blob holding everything exactly."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            scores=self.scores,
            n_training=np.int64(self.n_training),
            mean_score=np.float64(self.mean_score),
            exact=np.bool_(self.exact),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> ScoreDistribution:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return cls(
                arrays["scores"],
                int(arrays["n_training"]),
                float(arrays["mean_score"]),
                bool(arrays["exact"]),
            )


class ScoreReservoir:
    """A fixed-size uniform sample of a stream of scores, with its running count and mean.

    Reservoir sampling (Vitter's algorithm R, applied a batch at a time): after
    ``n`` scores, each of them is in the sample with probability
    ``capacity / n``. Memory is fixed at ``capacity`` floats (plus at most
    ``_PENDING`` scores not yet folded in); each score costs O(1). Batches are
    folded in together once enough have arrived (or when the reservoir is read),
    so that a stream of one-row batches does not pay NumPy's per-call cost on
    every one. Safe to share between threads.

    Parameters
    ----------
    capacity : int
        Most scores kept.
    threshold : float, optional
        Scores above it are counted as flagged (exactly, over the whole stream).
    random_state : int or None
    """

    def __init__(
        self,
        capacity: int = 10_000,
        threshold: float | None = None,
        random_state: int | None = None,
    ) -> None:
        if capacity < 1:
            raise InvalidParameterError(f"capacity must be at least 1; got {capacity}")
        self.capacity = int(capacity)
        self.threshold = threshold
        self._sample = np.empty(self.capacity)
        self._rng = np.random.default_rng(random_state)
        self._lock = threading.Lock()
        self._count = 0
        self._total = 0.0
        self._flagged = 0
        self._pending: list[np.ndarray] = []
        self._pending_size = 0

    def add(self, scores: object) -> None:
        """Add a batch of scores (NaN ones are skipped)."""
        batch = np.asarray(scores, dtype=np.float64).ravel()
        with self._lock:
            self._pending.append(batch)
            self._pending_size += batch.size
            if self._pending_size >= _PENDING:
                self._fold()

    def _fold(self) -> None:
        """Fold the pending batches into the sample (the lock is held)."""
        if not self._pending:
            return
        scores = np.concatenate(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self._insert(scores)

    def _insert(self, scores: np.ndarray) -> None:
        nan = np.isnan(scores)
        if nan.any():
            scores = scores[~nan]
        if not scores.size:
            return
        # (the lock is held by the caller)
        # Until the sample is full every score is kept, in order (a plain copy).
        fill = max(0, min(scores.size, self.capacity - self._count))
        self._sample[self._count : self._count + fill] = scores[:fill]
        rest = scores[fill:]
        if rest.size:
            seen = self._count + fill + np.arange(rest.size)  # 0-based positions
            slots = np.floor(self._rng.random(rest.size) * (seen + 1)).astype(np.int64)
            keep = slots < self.capacity
            # Later scores overwrite earlier ones in the same slot, as one at a time would.
            reversed_slots = slots[keep][::-1]
            unique_slots, last = np.unique(reversed_slots, return_index=True)
            self._sample[unique_slots] = rest[keep][::-1][last]
        self._count += int(scores.size)
        self._total += float(scores.sum())
        if self.threshold is not None:
            self._flagged += int(np.count_nonzero(scores > self.threshold))

    @property
    def count(self) -> int:
        """Scores added so far."""
        with self._lock:
            self._fold()
            return self._count

    @property
    def mean(self) -> float:
        """Mean of every score added (NaN before the first)."""
        with self._lock:
            self._fold()
            return self._total / self._count if self._count else math.nan

    @property
    def flagged_fraction(self) -> float:
        """Fraction of the scores above ``threshold`` (NaN without a threshold or scores)."""
        with self._lock:
            self._fold()
            if self.threshold is None or not self._count:
                return math.nan
            return self._flagged / self._count

    def sample(self) -> np.ndarray:
        """A copy of the sample, shape (min(count, capacity),)."""
        with self._lock:
            self._fold()
            return self._sample[: min(self._count, self.capacity)].copy()


@dataclass(frozen=True)
class Drift:
    """Live scores against the training scores.

    Attributes
    ----------
    n_scored : int
        Rows scored live.
    mean_log_likelihood : float
        Their mean log-likelihood (NaN before the first).
    training_mean_log_likelihood : float
    flagged_fraction : float
        Fraction of live rows above the reservoir's threshold (NaN without one).
    ks_statistic : float
        Two-sample Kolmogorov-Smirnov distance between the sampled live
        scores and the training scores (NaN before the first).
    ks_pvalue : float
    n_sample : int
        Live scores the statistic was computed from.
    """

    n_scored: int
    mean_log_likelihood: float
    training_mean_log_likelihood: float
    flagged_fraction: float
    ks_statistic: float
    ks_pvalue: float
    n_sample: int


def drift(training: ScoreDistribution, live: ScoreReservoir) -> Drift:
    """Compare the live scores' sample with the training scores (``scipy.stats.ks_2samp``)."""
    sample = live.sample()
    if sample.size:
        result = stats.ks_2samp(sample, training.scores)
        statistic, pvalue = float(result.statistic), float(result.pvalue)
    else:
        statistic = pvalue = math.nan
    return Drift(
        n_scored=live.count,
        mean_log_likelihood=-live.mean,
        training_mean_log_likelihood=-training.mean_score,
        flagged_fraction=live.flagged_fraction,
        ks_statistic=statistic,
        ks_pvalue=pvalue,
        n_sample=int(sample.size),
    )
