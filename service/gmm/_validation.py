"""Checks on data and sample weights, shared by fitting and scoring."""

from __future__ import annotations

import numpy as np

from .errors import InvalidDataError

__all__ = ["check_data", "check_data_with_missing", "check_sample_weight"]


def _as_matrix(X: object, n_features: int | None, dtype: np.dtype | type | None) -> np.ndarray:
    """``X`` as a C-contiguous 2-D float array of the right width (values not checked)."""
    try:
        array = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise InvalidDataError(f"data must be a rectangular matrix of numbers: {exc}") from None
    if array.dtype.kind not in "fiub":
        raise InvalidDataError("data must be a matrix of numbers")
    if array.ndim != 2:
        raise InvalidDataError(
            f"data must be 2-D (n_samples, n_features); got {array.ndim} dimension(s)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidDataError("data must have at least one row and one column")
    if n_features is not None and array.shape[1] != n_features:
        raise InvalidDataError(
            f"data has {array.shape[1]} features but the model was fitted with {n_features}"
        )
    target = (
        dtype
        if dtype is not None
        else (array.dtype if array.dtype in (np.float32, np.float64) else np.float64)
    )
    return np.ascontiguousarray(array, dtype=target)


def check_data(
    X: object, *, n_features: int | None = None, dtype: np.dtype | type | None = None
) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float array, or raise :class:`InvalidDataError`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_features : int, optional
        The width the data must have (that of a fitted model).
    dtype : float64 or float32, optional
        Keep float32 and float64 input as it is when None.
    """
    array = _as_matrix(X, n_features, dtype)
    if not np.all(np.isfinite(array)):
        row = int(np.flatnonzero(~np.all(np.isfinite(array), axis=1))[0])
        raise InvalidDataError(f"data must be finite: row {row} has NaN or infinity")
    return array


def check_data_with_missing(
    X: object, *, n_features: int, dtype: np.dtype | type | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Like :func:`check_data`, but NaN means "not observed".

    Complete data cost what :func:`check_data` costs: the mask is only built
    when some value is not finite.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    missing : ndarray of bool, shape (n_samples, n_features), or None
        True where a value is NaN; None when every value is present.

    Raises
    ------
    InvalidDataError
        A value is infinite, or a row has no value at all (the row is named).
    """
    array = _as_matrix(X, n_features, dtype)
    finite = np.isfinite(array)
    if np.all(finite):
        return array, None
    missing = np.isnan(array)
    if np.count_nonzero(missing) != finite.size - np.count_nonzero(finite):
        infinite = ~missing & ~finite
        row = int(np.flatnonzero(infinite.any(axis=1))[0])
        raise InvalidDataError(f"data must be finite or NaN (missing): row {row} has infinity")
    # rows with every value missing (a byte count per row: faster than all(axis=1))
    empty = missing.view(np.uint8).sum(axis=1, dtype=np.intp) == missing.shape[1]
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise InvalidDataError(f"row {row} has no observed feature: every value is missing")
    return array, missing


def check_sample_weight(sample_weight: object, n_samples: int) -> np.ndarray | None:
    """Return the weights as float64, or None for uniform weights.

    Raises
    ------
    InvalidDataError
        Wrong length, negative, non-finite, or all zero.
    """
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise InvalidDataError(
            f"sample_weight must have one value per sample ({n_samples}); got shape {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InvalidDataError("sample_weight must be finite and non-negative")
    if not weights.sum() > 0:
        raise InvalidDataError("sample_weight must not be all zero")
    return weights
