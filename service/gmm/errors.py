"""Typed errors raised by the Gaussian mixture core.

Every error says what went wrong and what the caller can do about it. They all
derive from :class:`GMMError`; the ones caused by the caller's input also
derive from :class:`ValueError`.
"""

from __future__ import annotations

__all__ = [
    "CollapsedComponentError",
    "FitCancelled",
    "GMMError",
    "InvalidDataError",
    "InvalidParameterError",
    "NumericalError",
]


class GMMError(Exception):
    """Base class of every error raised by :mod:`service.gmm`."""

    kind = "gmm_error"


class InvalidDataError(GMMError, ValueError):
    """The data cannot be fitted or scored as given (shape, NaN, infinity, too few rows)."""

    kind = "invalid_data"


class InvalidParameterError(GMMError, ValueError):
    """A model parameter or initial value is out of range or of the wrong shape."""

    kind = "invalid_parameter"


class CollapsedComponentError(GMMError, ValueError):
    """A component's covariance stopped being positive definite during the fit.

    The message begins with scikit-learn's, word for word, so code written
    against ``sklearn.mixture.GaussianMixture`` recognises it; then it names
    the component.

    Attributes
    ----------
    component : int or None
        Index of the first component whose covariance failed, when known.
    """

    kind = "collapsed_component"

    def __init__(self, component: int | None, dtype_hint: bool = False) -> None:
        self.component = component
        message = (
            "Fitting the mixture model failed because some components have "
            "ill-defined empirical covariance (for instance caused by singleton "
            "or collapsed samples). Try to decrease the number of components, "
            "increase reg_covar, or scale the input data."
        )
        if component is not None:
            message += f" The first such component is component {component}."
        if dtype_hint:
            message += " Fitting in float64 instead of float32 may also help."
        super().__init__(message)


class NumericalError(GMMError):
    """The computation overflowed or produced non-finite values."""

    kind = "numerical_error"


class FitCancelled(GMMError):
    """The progress callback asked the fit to stop."""

    kind = "cancelled"
