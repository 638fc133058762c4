"""A scikit-learn-style estimator over :func:`fit_mixture`.

For library users who know ``sklearn.mixture.GaussianMixture``: the same
constructor arguments and fitted attributes (``weights_``, ``means_``,
``covariances_``, ``precisions_cholesky_``, ``converged_``, ``n_iter_``,
``lower_bound_``, ``lower_bounds_``), plus ``sample_weight`` and ``dtype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .em import FitConfig, FitResult, ProgressCallback, fit_mixture
from .errors import GMMError
from .mixture import MixtureParameters

__all__ = ["GaussianMixture"]


class NotFittedError(GMMError, AttributeError):
    """The estimator has not been fitted yet."""

    kind = "not_fitted"


class GaussianMixture:
    """Gaussian mixture fitted by EM; see :class:`FitConfig` for the parameters."""

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: int | None = None,
        warm_start: bool = False,
        dtype: str = "float64",
    ) -> None:
        self.config = FitConfig(
            n_components=n_components,
            covariance_type=covariance_type,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            dtype=dtype,
        )
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.warm_start = warm_start
        self.result_: FitResult | None = None

    def fit(
        self, X: Any, sample_weight: Any = None, callback: ProgressCallback | None = None
    ) -> GaussianMixture:
        """Fit to ``X`` of shape (n_samples, n_features)."""
        previous = self.result_.parameters if (self.warm_start and self.result_) else None
        self.result_ = fit_mixture(
            X,
            self.config,
            sample_weight=sample_weight,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
            warm_start=previous,
            callback=callback,
        )
        return self

    @property
    def parameters_(self) -> MixtureParameters:
        if self.result_ is None:
            raise NotFittedError("this GaussianMixture is not fitted yet; call fit first")
        return self.result_.parameters

    weights_ = property(lambda self: self.parameters_.weights)
    means_ = property(lambda self: self.parameters_.means)
    covariances_ = property(lambda self: self.parameters_.covariances)
    precisions_cholesky_ = property(lambda self: self.parameters_.precisions_cholesky)
    converged_ = property(lambda self: self.parameters_ and self.result_.converged)
    n_iter_ = property(lambda self: self.parameters_ and self.result_.n_iter)
    lower_bound_ = property(lambda self: self.parameters_ and self.result_.lower_bound)
    lower_bounds_ = property(lambda self: self.parameters_ and self.result_.lower_bound_history)

    def score_samples(self, X: Any) -> np.ndarray:
        return self.parameters_.score_samples(X)

    def score(self, X: Any, sample_weight: Any = None) -> float:
        return self.parameters_.score(X, sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        return self.parameters_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.parameters_.predict_proba(X)

    def sample(self, n_samples: int = 1, random_state: int | None = None):
        return self.parameters_.sample(n_samples, random_state)

    def bic(self, X: Any) -> float:
        return self.parameters_.bic(X)

    def aic(self, X: Any) -> float:
        return self.parameters_.aic(X)
