"""Gaussian mixture models: vectorized EM, scoring and sampling in NumPy/SciPy.

Usable on its own::

    from service.gmm import FitConfig, fit_mixture

    result = fit_mixture(X, FitConfig(n_components=3, random_state=0))
    result.parameters.predict(X)

``GaussianMixture``, the scikit-learn estimator, needs scikit-learn (the
``sklearn`` extra); it is imported on first use, so everything else here works
without scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .covariance import COVARIANCE_TYPES
from .em import FitConfig, FitProgress, FitResult, estimate_parameters, fit_mixture
from .errors import (
    CollapsedComponentError,
    FitCancelled,
    GMMError,
    InvalidDataError,
    InvalidParameterError,
    NumericalError,
)
from .initialization import INIT_METHODS
from .marginal import ConditionalMixture, Explanations
from .mixture import MixtureParameters
from .pvalues import Drift, ScoreDistribution, ScoreReservoir, drift
from .selection import (
    CRITERIA,
    Candidate,
    SelectionProgress,
    SelectionResult,
    select_mixture,
)
from .stepwise import StepwiseUpdate, implied_statistics, update_mixture, update_mixture_chunked

if TYPE_CHECKING:
    from .estimator import GaussianMixture

__all__ = [
    "COVARIANCE_TYPES",
    "CRITERIA",
    "Candidate",
    "INIT_METHODS",
    "CollapsedComponentError",
    "ConditionalMixture",
    "Drift",
    "Explanations",
    "FitCancelled",
    "FitConfig",
    "FitProgress",
    "FitResult",
    "GMMError",
    "GaussianMixture",
    "InvalidDataError",
    "InvalidParameterError",
    "MixtureParameters",
    "NumericalError",
    "ScoreDistribution",
    "ScoreReservoir",
    "SelectionProgress",
    "SelectionResult",
    "StepwiseUpdate",
    "drift",
    "estimate_parameters",
    "fit_mixture",
    "implied_statistics",
    "select_mixture",
    "update_mixture",
    "update_mixture_chunked",
]


def __getattr__(name: str) -> object:
    """Load the scikit-learn estimator, and scikit-learn with it, on first use."""
    if name == "GaussianMixture":
        try:
            from .estimator import GaussianMixture
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("sklearn"):
                raise
            raise ImportError(
                "service.gmm.GaussianMixture needs scikit-learn: pip install 'gmm-service[sklearn]'"
            ) from exc
        return GaussianMixture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
