"""Gaussian mixture models: vectorized EM, scoring and sampling in NumPy/SciPy.

Usable on its own::

    from service.gmm import FitConfig, fit_mixture

    result = fit_mixture(X, FitConfig(n_components=3, random_state=0))
    result.parameters.predict(X)
"""

from __future__ import annotations

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
from .estimator import GaussianMixture
from .initialization import INIT_METHODS
from .marginal import ConditionalMixture, Explanations
from .mixture import MixtureParameters
from .pvalues import Drift, ScoreDistribution, ScoreReservoir, drift

__all__ = [
    "COVARIANCE_TYPES",
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
    "drift",
    "estimate_parameters",
    "fit_mixture",
]
