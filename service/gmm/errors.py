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


class CollapsedComponentError(GMMError):
    """A component's covariance stopped being positive definite during the fit.

    Attributes
    ----------
    component : int or None
        Index of the first component whose covariance failed, when known.
    """

    kind = "collapsed_component"

    def __init__(self, component: int | None, dtype_hint: bool = False) -> None:
        self.component = component
        where = "a component" if component is None else f"component {component}"
        message = (
            f"Fitting failed because {where} has an ill-defined covariance: it "
            "collapsed onto too few (or identical) points. Increase reg_covar, "
            "reduce n_components, or scale the data."
        )
        if dtype_hint:
            message += " Fitting in float64 instead of float32 may also help."
        super().__init__(message)


class NumericalError(GMMError):
    """The computation overflowed or produced non-finite values."""

    kind = "numerical_error"


class FitCancelled(GMMError):
    """The progress callback asked the fit to stop."""

    kind = "cancelled"
