"""Parameters that cross the library's boundary: checked imports, scikit-learn's attributes.

:func:`parameters_from_arrays` turns a mixture given by someone else (weights,
means, and one of covariances, precisions or precision Cholesky factors, in
scikit-learn's shapes) into :class:`MixtureParameters`, after checking every
array: shapes consistent with each other and with ``n_components``, finite
values, weights that are a probability vector, symmetric positive-definite
matrices. Every problem is reported with the name of the array at fault.

:func:`sklearn_attributes` is the way back: the fitted attributes a
``sklearn.mixture.GaussianMixture`` needs to predict and score as these
parameters do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .covariance import COVARIANCE_TYPES, covariances_from_precisions_cholesky
from .errors import InvalidParameterError
from .mixture import MixtureParameters

__all__ = [
    "InvalidParametersError",
    "PRECISION_FORMS",
    "parameters_from_arrays",
    "precisions_from_cholesky",
    "sklearn_attributes",
]

PRECISION_FORMS = ("covariances", "precisions", "precisions_cholesky")
WEIGHTS_SUM_TOLERANCE = 1e-8
_SYMMETRY_TOLERANCE = 1e-10


class InvalidParametersError(InvalidParameterError):
    """Parameters that do not describe a Gaussian mixture.

    Attributes
    ----------
    problems : list of (str, str)
        ``(field, detail)`` for every problem found, ``field`` naming the array.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {detail}" for name, detail in problems))


def _expected_shape(covariance_type: str, n_components: int, n_features: int) -> tuple[int, ...]:
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def _as_array(value: Any, name: str, problems: list[tuple[str, str]]) -> np.ndarray | None:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        problems.append((name, "must be a rectangular array of numbers"))
        return None
    if not np.all(np.isfinite(array)):
        problems.append((name, "must hold finite numbers only (no NaN or infinity)"))
        return None
    return array


def _matrices(array: np.ndarray) -> np.ndarray:
    return array.reshape((-1, *array.shape[-2:]))


def _check_symmetric_positive_definite(
    array: np.ndarray, name: str, problems: list[tuple[str, str]]
) -> None:
    for k, matrix in enumerate(_matrices(array)):
        where = name if array.ndim == 2 else f"{name}/{k}"
        scale = max(float(np.max(np.abs(matrix))), 1.0)
        if np.max(np.abs(matrix - matrix.T)) > _SYMMETRY_TOLERANCE * scale:
            problems.append((where, "must be symmetric"))
            continue
        if np.linalg.eigvalsh(matrix)[0] <= 0.0:
            problems.append((where, "must be positive definite"))


def _check_positive(array: np.ndarray, name: str, problems: list[tuple[str, str]]) -> None:
    if np.any(array <= 0.0):
        problems.append((name, "must be positive (these are variances or precisions)"))


def _is_upper(factors: np.ndarray) -> bool:
    return not np.any(np.tril(factors, -1))


def _check_triangular_factor(array: np.ndarray, name: str, problems: list[tuple[str, str]]) -> None:
    for k, factor in enumerate(_matrices(array)):
        where = name if array.ndim == 2 else f"{name}/{k}"
        if not (_is_upper(factor) or not np.any(np.triu(factor, 1))):
            problems.append((where, "must be triangular (U with U U^T = the precision matrix)"))
        elif np.any(np.diag(factor) <= 0.0):
            problems.append((where, "must have a positive diagonal"))


def _check_matrix_form(
    covariance_type: str, form: str
) -> Callable[[np.ndarray, str, list[tuple[str, str]]], None]:
    if covariance_type in ("diag", "spherical"):
        return _check_positive
    if form == "precisions_cholesky":
        return _check_triangular_factor
    return _check_symmetric_positive_definite


def _cholesky_from_form(array: np.ndarray, form: str, covariance_type: str) -> np.ndarray:
    """Upper-triangular precision factors from the form given."""
    if covariance_type in ("diag", "spherical"):
        if form == "precisions_cholesky":
            return array
        return 1.0 / np.sqrt(array) if form == "covariances" else np.sqrt(array)
    matrices = _matrices(array)
    if form == "covariances":
        cov_chol = np.linalg.cholesky(matrices)
        eye = np.broadcast_to(np.eye(matrices.shape[-1]), matrices.shape)
        factors = np.transpose(np.linalg.solve(cov_chol, eye), (0, 2, 1))
    elif form == "precisions_cholesky" and _is_upper(matrices):
        factors = matrices
    else:  # from P = U U^T (a lower factor gives P first): U upper is the flipped
        # lower Cholesky factor of the flipped P
        if form == "precisions_cholesky":
            matrices = matrices @ np.transpose(matrices, (0, 2, 1))
        flip = np.flip(matrices, axis=(-2, -1))
        factors = np.flip(np.linalg.cholesky(flip), axis=(-2, -1))
    return factors.reshape(array.shape)


def parameters_from_arrays(
    *,
    covariance_type: str,
    weights: Any,
    means: Any,
    covariances: Any = None,
    precisions: Any = None,
    precisions_cholesky: Any = None,
    n_components: int | None = None,
) -> MixtureParameters:
    """Checked :class:`MixtureParameters` from arrays in scikit-learn's shapes.

    Parameters
    ----------
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    weights : array-like of shape (n_components,)
        Non-negative, summing to 1 within 1e-8.
    means : array-like of shape (n_components, n_features)
    covariances, precisions, precisions_cholesky : array-like
        Exactly one of them: (n_components, n_features, n_features) for
        ``full``, (n_features, n_features) for ``tied``, (n_components,
        n_features) for ``diag``, (n_components,) for ``spherical``.
        Precision Cholesky factors are upper triangular, as scikit-learn's.
    n_components : int, optional
        When given, the number of components the arrays must describe.

    Raises
    ------
    InvalidParametersError
        Listing every problem with the array it concerns.
    """
    problems: list[tuple[str, str]] = []
    if covariance_type not in COVARIANCE_TYPES:
        raise InvalidParametersError(
            [("covariance_type", f"must be one of {', '.join(COVARIANCE_TYPES)}")]
        )
    given = {
        form: value
        for form, value in zip(
            PRECISION_FORMS, (covariances, precisions, precisions_cholesky), strict=True
        )
        if value is not None
    }
    if len(given) != 1:
        raise InvalidParametersError(
            [
                (form, "give exactly one of covariances, precisions or precisions_cholesky")
                for form in (given or {"covariances": None})
            ]
        )
    ((form, value),) = given.items()

    weights_array = _as_array(weights, "weights", problems)
    means_array = _as_array(means, "means", problems)
    matrix = _as_array(value, form, problems)
    if problems:
        raise InvalidParametersError(problems)
    assert weights_array is not None and means_array is not None and matrix is not None

    if means_array.ndim != 2 or means_array.shape[0] < 1 or means_array.shape[1] < 1:
        raise InvalidParametersError([("means", "must have shape (n_components, n_features)")])
    k, d = means_array.shape
    if n_components is not None and k != n_components:
        problems.append(("means", f"has {k} rows; the model has n_components={n_components}"))
    if weights_array.shape != (k,):
        problems.append(("weights", f"must have shape ({k},), one weight per mean"))
    else:
        if np.any(weights_array < 0.0):
            problems.append(("weights", "must be non-negative"))
        elif abs(float(weights_array.sum()) - 1.0) > WEIGHTS_SUM_TOLERANCE:
            problems.append(
                (
                    "weights",
                    f"must sum to 1 (within {WEIGHTS_SUM_TOLERANCE:g}); they sum to "
                    f"{float(weights_array.sum())!r}",
                )
            )
    expected = _expected_shape(covariance_type, k, d)
    if matrix.shape != expected:
        problems.append(
            (
                form,
                f"must have shape {expected} for covariance_type={covariance_type!r}; "
                f"got {matrix.shape}",
            )
        )
    else:
        _check_matrix_form(covariance_type, form)(matrix, form, problems)
    if problems:
        raise InvalidParametersError(problems)

    factors = _cholesky_from_form(matrix, form, covariance_type)
    if not np.all(np.isfinite(factors)):
        raise InvalidParametersError([(form, "is too ill-conditioned to invert in float64")])
    covariance = (
        matrix
        if form == "covariances"
        else covariances_from_precisions_cholesky(factors, covariance_type)
    )
    return MixtureParameters(covariance_type, weights_array, means_array, covariance, factors)


def precisions_from_cholesky(precisions_cholesky: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision matrices (or per-feature precisions) ``U U^T`` from their factors ``U``."""
    if covariance_type in ("diag", "spherical"):
        return precisions_cholesky**2
    factors = _matrices(precisions_cholesky)
    return (factors @ np.transpose(factors, (0, 2, 1))).reshape(precisions_cholesky.shape)


def sklearn_attributes(parameters: MixtureParameters) -> dict[str, Any]:
    """The fitted attributes of ``sklearn.mixture.GaussianMixture`` for these parameters.

    Returns
    -------
    dict
        ``weights_, means_, covariances_, precisions_, precisions_cholesky_``
        (arrays in scikit-learn's shapes), ``covariance_type`` and
        ``n_features_in_``. Setting them on an unfitted estimator (with
        ``n_components`` equal) makes it score and predict as these parameters do.
    """
    return {
        "covariance_type": parameters.covariance_type,
        "n_features_in_": parameters.n_features,
        "weights_": parameters.weights,
        "means_": parameters.means,
        "covariances_": parameters.covariances,
        "precisions_": precisions_from_cholesky(
            parameters.precisions_cholesky, parameters.covariance_type
        ),
        "precisions_cholesky_": parameters.precisions_cholesky,
    }
