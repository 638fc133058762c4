"""Data matrices: parsing (JSON lists, CSV, .npy), validation with field pointers, blobs.

Everything the service stores or computes on is a C-contiguous float64 matrix of
finite numbers; this module is the one way in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import simdjson

from .errors import FieldError, Invalid

__all__ = [
    "CSV_PATTERN",
    "array_from_blob",
    "array_to_blob",
    "fast_json_matrix",
    "matrix_from_csv",
    "matrix_from_npy",
    "matrix_from_rows",
    "sha256_of",
]


def matrix_from_rows(
    rows: Sequence[Sequence[float | None]],
    *,
    pointer: str = "#/data",
    n_features: int | None = None,
    max_rows: int | None = None,
    max_features: int | None = None,
    allow_missing: bool = False,
) -> np.ndarray:
    """A float64 matrix from a list of rows, or :class:`Invalid` naming each bad place.

    Rows must be non-empty, all of one length (``n_features`` when given), and
    hold finite numbers; with ``allow_missing``, ``None`` is a feature the row
    does not have (NaN in the matrix), but each row needs one it has.
    """
    if len(rows) == 0:
        raise Invalid("data must have at least one row", [FieldError(pointer, "must not be empty")])
    if max_rows is not None and len(rows) > max_rows:
        raise Invalid(
            f"data has {len(rows)} rows; the limit is {max_rows}",
            [FieldError(pointer, f"at most {max_rows} rows")],
        )
    width = n_features if n_features is not None else len(rows[0])
    problems: list[FieldError] = []
    for i, row in enumerate(rows):
        if len(row) != width:
            reason = (
                f"has {len(row)} values; the model was fitted with {width} features"
                if n_features is not None
                else f"has {len(row)} values; row 0 has {width}"
            )
            problems.append(FieldError(f"{pointer}/{i}", reason))
            if len(problems) >= 20:
                break
    if problems:
        raise Invalid("data must be a rectangular matrix", problems)
    if width == 0:
        raise Invalid("rows must not be empty", [FieldError(f"{pointer}/0", "must not be empty")])
    if max_features is not None and width > max_features:
        raise Invalid(
            f"data has {width} features; the limit is {max_features}",
            [FieldError(f"{pointer}/0", f"at most {max_features} values per row")],
        )
    try:
        matrix = np.array(rows, dtype=np.float64)  # None becomes NaN
    except (TypeError, ValueError) as exc:
        raise Invalid(f"data must hold numbers: {exc}", [FieldError(pointer, str(exc))]) from None
    return check_finite(matrix, pointer=pointer, allow_missing=allow_missing)


def check_finite(
    matrix: np.ndarray, *, pointer: str = "#/data", allow_missing: bool = False
) -> np.ndarray:
    """Raise :class:`Invalid` naming the first non-finite cells.

    With ``allow_missing``, NaN marks a missing feature; infinity is still
    refused, and so is a row with no feature present.
    """
    finite = np.isfinite(matrix)
    if finite.all():
        return matrix
    if not allow_missing:
        bad = np.argwhere(~finite)
        raise Invalid(
            "data must hold finite numbers (no NaN or infinity)",
            [FieldError(f"{pointer}/{i}/{j}", "must be a finite number") for i, j in bad[:20]],
        )
    infinite = np.argwhere(np.isinf(matrix))
    if len(infinite):
        raise Invalid(
            "data must hold finite numbers or null (missing)",
            [FieldError(f"{pointer}/{i}/{j}", "must be finite") for i, j in infinite[:20]],
        )
    empty = np.flatnonzero(~finite.any(axis=1))
    if len(empty):
        raise Invalid(
            "every row needs at least one feature present",
            [FieldError(f"{pointer}/{i}", "has no feature present (all null)") for i in empty[:20]],
        )
    return matrix


def _check_shape(
    matrix: np.ndarray,
    max_rows: int | None,
    max_features: int | None,
    n_features: int | None = None,
    allow_missing: bool = False,
) -> np.ndarray:
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise Invalid(
            f"data must be a non-empty 2-D matrix; got shape {matrix.shape}",
            [FieldError("#/data", "must be a non-empty 2-D matrix")],
        )
    if max_rows is not None and matrix.shape[0] > max_rows:
        raise Invalid(f"data has {matrix.shape[0]} rows; the limit is {max_rows}")
    if max_features is not None and matrix.shape[1] > max_features:
        raise Invalid(f"data has {matrix.shape[1]} features; the limit is {max_features}")
    if n_features is not None and matrix.shape[1] != n_features:
        raise Invalid(
            f"data has {matrix.shape[1]} features; the model was fitted with {n_features}",
            [FieldError("#/data", f"must have {n_features} columns")],
        )
    return check_finite(np.ascontiguousarray(matrix, dtype=np.float64), allow_missing=allow_missing)


# Bodies up to this size are parsed by orjson: for a few rows, simdjson's set-up
# costs more than building a few Python floats.
_SMALL_BODY = 4096
_NUMBER_TYPES = (float, int)


def _small_json_matrix(
    body: bytes, n_features: int | None, max_rows: int | None, max_features: int | None
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """:func:`fast_json_matrix` for a small body (the same contract)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    rows = document.pop("data", None)
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], list):
        return None
    if max_rows is not None and len(rows) > max_rows:
        return None
    width = n_features or len(rows[0])
    if width == 0 or (max_features is not None and width > max_features):
        return None
    for row in rows:  # bool is an int to Python, not a number to JSON: exact types only
        if type(row) is not list or len(row) != width:
            return None
        for value in row:
            if type(value) not in _NUMBER_TYPES:
                return None
    if any(isinstance(value, dict | list) for value in document.values()):
        return None
    matrix = np.array(rows, dtype=np.float64)
    if not np.isfinite(matrix).all():
        return None
    return matrix, document


def fast_json_matrix(
    body: bytes,
    *,
    n_features: int | None,
    max_rows: int | None,
    max_features: int | None,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The ``data`` matrix of a JSON object body and its other fields, parsed by simdjson.

    The fast path for well-formed bodies: the numbers go from the JSON text
    straight into a float64 array, with no Python object per number (about
    4x faster than a general JSON parser). Returns None for anything it does
    not take as it is (a malformed document, a non-number, a nested array, a
    ragged or mis-sized matrix, a repeated key), so that the caller's full validation
    reports exactly what is wrong.
    """
    if len(body) <= _SMALL_BODY:
        return _small_json_matrix(body, n_features, max_rows, max_features)
    parser = simdjson.Parser()
    try:
        document = parser.parse(body)
        if not isinstance(document, simdjson.Object):
            return None
        keys = list(document.keys())
        rows = document.get("data")
        if len(set(keys)) != len(keys) or not isinstance(rows, simdjson.Array):
            return None
        n_rows = len(rows)
        width = n_features
        if n_rows == 0 or (max_rows is not None and n_rows > max_rows):
            return None
        # as_buffer flattens nested arrays: [[1, 2], [[1], 3]] would read as two
        # rows of two. A matrix's text holds one "[" for itself and one per row;
        # any more (nesting, or a bracket in another field's string) takes the
        # full validation, which names the cell. About 0.4 ms for 10,000 x 16.
        if np.count_nonzero(np.frombuffer(body, np.uint8) == ord("[")) != n_rows + 1:
            return None
        for row in rows:
            if not isinstance(row, simdjson.Array) or len(row) != (width := width or len(row)):
                return None
        if width == 0 or (max_features is not None and width > max_features):
            return None
        matrix = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
        others = {key: document[key] for key in keys if key != "data"}
        if any(isinstance(value, simdjson.Object | simdjson.Array) for value in others.values()):
            return None
    except (ValueError, TypeError, KeyError, RuntimeError):
        return None
    finally:
        rows = document = None  # the parser may be reused only once its proxies are gone
    if matrix.size != n_rows * width or not np.isfinite(matrix).all():
        return None
    return matrix.reshape(n_rows, width), others


# CSV bodies: an optional header line (any line that is not a row of numbers),
# then one row of comma-separated decimal numbers per line, no blank lines, an
# optional final line break. The pattern is the whole rule, and the parser
# checks it line by line (the same grammar, without one regex over megabytes).
_NUMBER = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
_CELL = rf"[ \t]*{_NUMBER}[ \t]*"
CSV_ROW_PATTERN = rf"{_CELL}(,{_CELL})*"
CSV_PATTERN = rf"^\ufeff?([^\r\n]*\r?\n)?({CSV_ROW_PATTERN}\r?\n)*{CSV_ROW_PATTERN}(\r?\n)?$"
_CSV_ROW = re.compile(CSV_ROW_PATTERN)
_CSV_CELL = re.compile(_CELL)
_LINE_BREAK = re.compile(r"\r?\n")


def _csv_problem(i: int, line: str) -> FieldError:
    """The first cell of a bad line that is not a number (the line, if none)."""
    for j, cell in enumerate(line.split(",")):
        if _CSV_CELL.fullmatch(cell) is None:
            return FieldError(f"#/data/{i}/{j}", f"{cell[:40]!r} is not a number")
    return FieldError(f"#/data/{i}", f"{line[:40]!r} is not a row of comma-separated numbers")


def matrix_from_csv(
    body: bytes,
    *,
    max_rows: int | None = None,
    max_features: int | None = None,
    allow_missing: bool = False,
) -> np.ndarray:
    """A matrix from CSV text (:data:`CSV_PATTERN`), with or without a header line.

    With ``allow_missing`` (reading files, not request bodies), an empty cell is
    a missing feature (NaN).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("CSV body must be UTF-8 text", [FieldError("#/", "not UTF-8")]) from None
    if allow_missing:
        return _csv_with_missing(text, max_rows=max_rows, max_features=max_features)
    lines = _LINE_BREAK.split(text.removeprefix("\ufeff"))
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the final line break
    if lines and "\r" not in lines[0] and _CSV_ROW.fullmatch(lines[0]) is None:
        lines = lines[1:]  # a header: any one line that is not a row of numbers
    if not lines:
        raise Invalid(
            "CSV body has no rows of numbers", [FieldError("#/", "needs at least one row")]
        )
    problems = [
        _csv_problem(i, line) for i, line in enumerate(lines) if not _CSV_ROW.fullmatch(line)
    ]
    problems = problems[:20]
    if problems:
        raise Invalid("CSV rows must hold comma-separated numbers", problems)
    parsed = [[float(cell) for cell in line.split(",")] for line in lines]
    return matrix_from_rows(parsed, max_rows=max_rows, max_features=max_features)


def matrix_from_npy(
    body: bytes,
    *,
    max_rows: int | None = None,
    max_features: int | None = None,
    n_features: int | None = None,
    allow_missing: bool = False,
) -> np.ndarray:
    """A matrix from a ``.npy`` file's bytes (numeric dtypes only, no pickles).

    With ``allow_missing``, NaN marks a feature a row does not have.
    """
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a bad file
        raise Invalid(
            f"body is not a readable .npy file: {exc}",
            [FieldError("#/", "must be a complete .npy file of a 2-D numeric array")],
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiub":
        raise Invalid(
            "the .npy array must hold numbers",
            [FieldError("#/", f"dtype {getattr(array, 'dtype', None)} is not a number type")],
        )
    return _check_shape(array, max_rows, max_features, n_features, allow_missing)


def array_to_blob(array: np.ndarray) -> bytes:
    """An exact ``.npy`` blob."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def array_from_blob(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def sha256_of(matrix: np.ndarray) -> str:
    """SHA-256 of the matrix's float64 C-order bytes: equal data, equal hash."""
    return hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float64).tobytes()).hexdigest()


def _csv_with_missing(text: str, *, max_rows: int | None, max_features: int | None) -> np.ndarray:
    """CSV cells as numbers, an empty cell a missing feature; the header row skipped."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row and any(c.strip() for c in row)]
    if rows and _CSV_ROW.fullmatch(",".join(rows[0])) is None and all(c.strip() for c in rows[0]):
        rows = rows[1:]  # a header: a full line that is not a row of numbers
    parsed: list[list[float | None]] = []
    problems: list[FieldError] = []
    for i, row in enumerate(rows):
        values: list[float | None] = []
        for j, cell in enumerate(row):
            if not cell.strip():
                values.append(None)
                continue
            try:
                values.append(float(cell))
            except ValueError:
                problems.append(FieldError(f"#/data/{i}/{j}", f"{cell[:40]!r} is not a number"))
        parsed.append(values)
        if len(problems) >= 20:
            break
    if problems:
        raise Invalid("CSV cells must be numbers", problems)
    return matrix_from_rows(
        parsed, max_rows=max_rows, max_features=max_features, allow_missing=True
    )
