"""A fitted Gaussian mixture: its parameters, and what they answer.

:class:`MixtureParameters` holds ``weights``, ``means``, ``covariances`` and
``precisions_cholesky`` (shapes as scikit-learn's ``GaussianMixture``) and
computes, with the same chunked kernels the fit uses: per-sample
log-likelihood, responsibilities, labels, BIC/AIC and samples. It serialises
to bytes with an exact float round trip.

Rows may miss features (NaN): scoring and prediction then use the exact
marginal mixture over the features present, and :meth:`condition`,
:meth:`impute` and :meth:`explain` answer from the conditional mixtures (see
:mod:`.marginal`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import linalg

from ._validation import check_data_with_missing, check_sample_weight
from .covariance import (
    COVARIANCE_TYPES,
    covariances_from_precisions_cholesky,
    log_det_cholesky,
    n_parameters,
    precisions_cholesky_from_covariances,
)
from .errors import InvalidParameterError
from .kernels import (
    ScoringKernel,
    chunk_rows,
    log_norm,
    log_resp_normalize,
    map_chunks,
    weighted_log_prob,
)
from .marginal import (
    ConditionalMixture,
    Explanations,
    MissingDataKernel,
    condition,
    explain,
    impute,
    marginal_weighted_log_prob,
)

__all__ = ["MixtureParameters"]

_ARRAY_FIELDS = ("weights", "means", "covariances", "precisions_cholesky")
_LOG_2PI = math.log(2.0 * math.pi)
# Up to this many rows, a full model scores them without the quadratic-feature kernel.
_FEW_ROWS = 16


@dataclass(frozen=True, eq=False)
class MixtureParameters:
    """The parameters of a Gaussian mixture.

    Attributes
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        (n_components, n_features, n_features) for ``full``,
        (n_features, n_features) for ``tied``, (n_components, n_features) for
        ``diag``, (n_components,) for ``spherical``.
    precisions_cholesky : ndarray
        Same shape as ``covariances``: ``U`` with ``U U^T = inv(covariance)``.
    """

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    _kernel: ScoringKernel | None = field(default=None, repr=False, compare=False)
    _missing_kernel: MissingDataKernel | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.covariance_type not in COVARIANCE_TYPES:
            raise InvalidParameterError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {self.covariance_type!r}"
            )
        for name in _ARRAY_FIELDS:
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @classmethod
    def from_covariances(
        cls,
        weights: np.ndarray,
        means: np.ndarray,
        covariances: np.ndarray,
        covariance_type: str = "full",
    ) -> MixtureParameters:
        """Parameters from weights, means and covariances (precision factors derived)."""
        covariances = np.asarray(covariances, dtype=np.float64)
        return cls(
            covariance_type,
            weights,
            means,
            covariances,
            precisions_cholesky_from_covariances(covariances, covariance_type),
        )

    @classmethod
    def from_precisions_cholesky(
        cls,
        weights: np.ndarray,
        means: np.ndarray,
        precisions_cholesky: np.ndarray,
        covariance_type: str = "full",
    ) -> MixtureParameters:
        """Parameters from weights, means and precision Cholesky factors (covariances derived)."""
        precisions_cholesky = np.asarray(precisions_cholesky, dtype=np.float64)
        return cls(
            covariance_type,
            weights,
            means,
            covariances_from_precisions_cholesky(precisions_cholesky, covariance_type),
            precisions_cholesky,
        )

    # --- shape ------------------------------------------------------------------

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.means.shape[1])

    @property
    def n_parameters(self) -> int:
        """Free parameters, as scikit-learn counts them for BIC and AIC."""
        return n_parameters(self.n_components, self.n_features, self.covariance_type)

    def _built_once(self, name: str, build: Callable[[], object]):
        """The cached attribute ``name``, built by ``build()`` on first use."""
        if getattr(self, name) is None:
            object.__setattr__(self, name, build())
        return getattr(self, name)

    @property
    def kernel(self) -> ScoringKernel:
        """The float64 scoring kernel, built once."""
        return self._built_once(
            "_kernel",
            lambda: ScoringKernel.build(
                self.weights, self.means, self.precisions_cholesky, self.covariance_type
            ),
        )

    @property
    def missing_kernel(self) -> MissingDataKernel:
        """The layout for rows with missing features, built once."""
        return self._built_once(
            "_missing_kernel",
            lambda: MissingDataKernel.build(
                self.weights,
                self.means,
                self.covariances,
                self.precisions_cholesky,
                self.covariance_type,
                self.kernel,
            ),
        )

    # --- probabilities ------------------------------------------------------------

    @cached_property
    def _log_constant(self) -> np.ndarray:
        """``log pi_k - D/2 log(2 pi) + log det U_k``, shape (n_components, 1)."""
        log_det = log_det_cholesky(self.precisions_cholesky, "full", self.n_features)
        with np.errstate(divide="ignore"):
            constant = np.log(self.weights) - 0.5 * self.n_features * _LOG_2PI + log_det
        return constant[:, None]

    def _few_rows_log_prob(self, X: np.ndarray) -> np.ndarray:
        """``log pi_k + log N(x | k)`` for a handful of rows of a full model, shape (K, n).

        The quadratic-feature kernel builds D(D+1)/2 feature rows with one NumPy
        call each: right for thousands of rows, slow for a few. Here one batched
        product ``(x - mu_k)^T U_k`` serves all components.
        """
        y = (X[None, :, :] - self.means[:, None, :]) @ self.precisions_cholesky
        return self._log_constant - 0.5 * np.einsum("knd,knd->kn", y, y)

    def _map_rows(self, X: object, per_chunk):
        X, missing = check_data_with_missing(X, n_features=self.n_features, dtype=np.float64)
        if missing is not None:
            return [per_chunk(marginal_weighted_log_prob(self.missing_kernel, X, missing))]
        if len(X) <= _FEW_ROWS and self.covariance_type == "full":
            return [per_chunk(self._few_rows_log_prob(X))]
        kernel = self.kernel
        rows = chunk_rows(self.n_features, self.n_components)

        def one_chunk(rows_slice: slice):
            return per_chunk(weighted_log_prob(X[rows_slice], kernel))

        return list(map_chunks(one_chunk, len(X), rows))

    def score_samples(self, X: object) -> np.ndarray:
        """Log-likelihood of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing feature: that row's log-likelihood is the
            marginal mixture's over the features it has.

        Returns
        -------
        log_likelihood : ndarray of shape (n_samples,)
        """
        return np.concatenate(self._map_rows(X, log_norm))

    def score(self, X: object, sample_weight: object = None) -> float:
        """Mean (weighted) log-likelihood of the samples."""
        log_likelihood = self.score_samples(X)
        weights = check_sample_weight(sample_weight, len(log_likelihood))
        return float(np.average(log_likelihood, weights=weights))

    def predict_proba(self, X: object) -> np.ndarray:
        """Responsibilities: posterior probability of each component for each sample.

        Returns
        -------
        responsibilities : ndarray of shape (n_samples, n_components)
        """
        return np.concatenate(self._map_rows(X, lambda lp: log_resp_normalize(lp)[1].T), axis=0)

    def predict(self, X: object) -> np.ndarray:
        """Most probable component of each sample, shape (n_samples,)."""
        return np.concatenate(self._map_rows(X, lambda lp: lp.argmax(axis=0)))

    def predict_with_proba(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        """Labels and responsibilities from one pass."""
        parts = self._map_rows(X, lambda lp: (lp.argmax(axis=0), log_resp_normalize(lp)[1].T))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # --- missing features ----------------------------------------------------------

    def _check_missing(self, X: object) -> np.ndarray:
        return check_data_with_missing(X, n_features=self.n_features, dtype=np.float64)[0]

    def condition(self, X: object) -> list[ConditionalMixture]:
        """The conditional mixture of each row's missing (NaN) features given the others.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        conditionals : list of ConditionalMixture, one per row
            ``missing`` (n_missing,), ``weights`` (n_components,), ``means``
            (n_components, n_missing), ``covariances`` (n_components, n_missing, n_missing).
        """
        return condition(self.missing_kernel, self._check_missing(X))

    def impute(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        """Each NaN replaced by its conditional mean, with its conditional standard deviation.

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
        std : ndarray of shape (n_samples, n_features)
            NaN where the value was given.
        """
        return impute(self.missing_kernel, self._check_missing(X))

    def explain(self, X: object) -> Explanations:
        """Each row's features ordered by how much each makes the row unlikely.

        See :func:`.marginal.explain` for the definition of a contribution.

        Returns
        -------
        explanations : Explanations
            ``features`` and ``contributions``, both (n_samples, n_features).
        """
        return explain(self.missing_kernel, self._check_missing(X))

    # --- model selection ----------------------------------------------------------

    def information_criteria(
        self, X: object, sample_weight: object = None
    ) -> tuple[float, float, np.ndarray]:
        """BIC, AIC and the per-sample log-likelihood they come from, in one pass.

        Returns
        -------
        bic : float
        aic : float
        log_likelihood : ndarray of shape (n_samples,)
        """
        log_likelihood = self.score_samples(X)
        weights = check_sample_weight(sample_weight, len(log_likelihood))
        if weights is None:
            total, n_samples = float(log_likelihood.sum()), float(len(log_likelihood))
        else:
            total, n_samples = float(weights @ log_likelihood), float(weights.sum())
        bic = -2.0 * total + self.n_parameters * math.log(n_samples)
        aic = -2.0 * total + 2.0 * self.n_parameters
        return bic, aic, log_likelihood

    def bic(self, X: object, sample_weight: object = None) -> float:
        """Bayesian information criterion on ``X`` (lower is better)."""
        return self.information_criteria(X, sample_weight)[0]

    def aic(self, X: object, sample_weight: object = None) -> float:
        """Akaike information criterion on ``X`` (lower is better)."""
        return self.information_criteria(X, sample_weight)[1]

    # --- sampling -----------------------------------------------------------------

    def _covariance_factor(self, component: int) -> np.ndarray:
        """``A`` with ``A A^T = Sigma_k`` (or the per-feature standard deviations)."""
        if self.covariance_type == "full":
            return linalg.cholesky(self.covariances[component], lower=True)
        if self.covariance_type == "tied":
            return linalg.cholesky(self.covariances, lower=True)
        return np.sqrt(self.covariances[component])

    def sample(
        self, n_samples: int, random_state: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the mixture, in random order.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        components : ndarray of shape (n_samples,)
            The component that drew each point.
        """
        if n_samples < 1:
            raise InvalidParameterError(f"n_samples must be at least 1; got {n_samples}")
        rng = np.random.default_rng(random_state)
        weights = self.weights / self.weights.sum()
        components = rng.choice(self.n_components, size=n_samples, p=weights)
        noise = rng.standard_normal((n_samples, self.n_features))
        X = np.empty((n_samples, self.n_features))
        for k in range(self.n_components):
            rows = components == k
            if not rows.any():
                continue
            factor = self._covariance_factor(k)
            drawn = noise[rows] @ factor.T if factor.ndim == 2 else noise[rows] * factor
            X[rows] = drawn + self.means[k]
        return X, components

    # --- serialisation ------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """An ``.npz`` blob holding every array exactly."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            covariance_type=np.array(self.covariance_type),
            **{name: getattr(self, name) for name in _ARRAY_FIELDS},
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> MixtureParameters:
        """Inverse of :meth:`to_bytes`."""
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return cls(str(arrays["covariance_type"]), *(arrays[name] for name in _ARRAY_FIELDS))

    def to_dict(self) -> dict[str, object]:
        """Plain lists, for JSON."""
        return {
            "covariance_type": self.covariance_type,
            **{name: getattr(self, name).tolist() for name in _ARRAY_FIELDS},
        }
