"""Streamed dataset bodies: CSV and ``.npy`` parsed as they arrive, written as row chunks.

``POST /v1/datasets`` with ``text/csv`` or ``application/x-npy`` never holds
its body whole: the route feeds the body to a :class:`CsvUpload` or
:class:`NpyUpload` a few megabytes at a time (in a worker thread), which parses
whole rows out of what it has, checks them, and appends them to a
:class:`~service.blobstore.MatrixWriter` (one chunk in memory at most). What
is wrong is an :class:`~service.errors.Invalid` naming the row and column
(``#/data/<row>/<column>``), as for bodies parsed whole; the caller then
calls ``abort()``, which removes what was written.

The same parsers read imports' ``.npy`` files (:mod:`service.imports`).
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import Protocol

import numpy as np

from .blobstore import BlobStore, MatrixWriter, WrittenMatrix
from .errors import FieldError, Invalid, ServiceError
from .matrices import _CSV_ROW, _LINE_BREAK, _csv_problem

__all__ = ["CsvUpload", "DatasetTooLarge", "NpyUpload", "StreamedMatrix"]


class DatasetTooLarge(ServiceError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            f"the request body exceeds {max_bytes} bytes (GMM_MAX_DATASET_BYTES)",
            413,
            "Content Too Large",
            "/problems/too-large",
        )


class StreamedMatrix(Protocol):
    """A body parsed piece by piece into the blob store."""

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> WrittenMatrix: ...

    def abort(self) -> None: ...


def _check_finite(rows: np.ndarray, first_row: int, pointer: str = "#/data") -> None:
    finite = np.isfinite(rows)
    if not finite.all():
        bad = np.argwhere(~finite)[:20]
        raise Invalid(
            "data must hold finite numbers (no NaN or infinity)",
            [
                FieldError(f"{pointer}/{first_row + i}/{j}", "must be a finite number")
                for i, j in bad
            ],
        )


class _Rows:
    """Checked float64 rows on their way to a writer, made at the first row.

    Rows are numbered (in pointers) from the first this object appended.
    """

    def __init__(
        self,
        make_writer: Callable[[int], MatrixWriter],
        max_features: int,
        on_abort: Callable[[], None],
    ) -> None:
        self.make_writer = make_writer
        self.max_features = max_features
        self.on_abort = on_abort
        self.writer: MatrixWriter | None = None
        self.base = 0

    @property
    def n_rows(self) -> int:
        return 0 if self.writer is None else self.writer.n_samples - self.base

    def start(self, n_features: int, pointer: str) -> None:
        if n_features > self.max_features:
            raise Invalid(
                f"data has {n_features} features; the limit is {self.max_features}",
                [FieldError(pointer, f"at most {self.max_features} values per row")],
            )
        self.writer = self.make_writer(n_features)
        self.base = self.writer.n_samples

    def append(self, rows: np.ndarray) -> None:
        assert self.writer is not None
        _check_finite(rows, self.n_rows)
        self.writer.append(rows)

    def finish(self) -> WrittenMatrix:
        assert self.writer is not None
        return self.writer.close()


class _Streamed:
    """What both parsers share: where the rows go."""

    def __init__(
        self,
        make_writer: Callable[[int], MatrixWriter],
        *,
        max_features: int,
        on_abort: Callable[[], None] = lambda: None,
    ) -> None:
        self._rows = _Rows(make_writer, max_features, on_abort)

    @classmethod
    def to_store(cls, store: BlobStore, dataset_id: str, *, max_features: int):
        """A parser whose rows become dataset ``dataset_id``'s chunks."""
        return cls(
            lambda n_features: store.writer(dataset_id, n_features),
            max_features=max_features,
            on_abort=lambda: store.delete(dataset_id),
        )

    @property
    def rows_stored(self) -> int:
        return self._rows.n_rows

    def finish_rows(self) -> None:
        """Check that the body ended where it should (the writer stays open)."""
        raise NotImplementedError

    def finish(self) -> WrittenMatrix:
        self.finish_rows()
        return self._rows.finish()

    def abort(self) -> None:
        self._rows.on_abort()


# --- .npy -----------------------------------------------------------------------------

_NPY_HEADER_MAX = 2**16 + 16
_NOT_NPY = FieldError("#/", "must be a complete .npy file of a 2-D numeric array")


class NpyUpload(_Streamed):
    """A ``.npy`` body: the header parsed first, then rows as their bytes arrive.

    Any numeric dtype (converted to float64), C order (a Fortran-order array
    cannot be written row by row, unless it has one column or one row).
    """

    def __init__(self, make_writer, **options) -> None:
        super().__init__(make_writer, **options)
        self._pending = bytearray()
        self._dtype: np.dtype | None = None
        self._shape: tuple[int, int] = (0, 0)
        self._row_bytes = 0

    def feed(self, data: bytes) -> None:
        self._pending += data
        if self._dtype is None and not self._read_header():
            return
        n_rows = len(self._pending) // self._row_bytes
        if n_rows == 0:
            return
        if self._rows.n_rows + n_rows > self._shape[0]:
            raise Invalid(
                f"the .npy body holds more than the {self._shape[0]} rows its header declares",
                [_NOT_NPY],
            )
        assert self._dtype is not None
        rows = np.frombuffer(self._pending, self._dtype, n_rows * self._shape[1]).reshape(
            n_rows, self._shape[1]
        )
        self._rows.append(rows.astype(np.float64))
        del rows
        del self._pending[: n_rows * self._row_bytes]

    def _read_header(self) -> bool:
        """Parse the header once it is all here; False while it is still arriving."""
        if len(self._pending) < 12:
            return False
        header = io.BytesIO(bytes(self._pending[:_NPY_HEADER_MAX]))
        try:
            major, _ = np.lib.format.read_magic(header)
            length_bytes = 2 if major == 1 else 4
            length = int.from_bytes(self._pending[8 : 8 + length_bytes], "little")
            if len(self._pending) < 8 + length_bytes + length:
                if 8 + length_bytes + length > _NPY_HEADER_MAX:
                    raise ValueError("the .npy header is too long")
                return False
            read = {1: np.lib.format.read_array_header_1_0, 2: np.lib.format.read_array_header_2_0}
            shape, fortran_order, dtype = read.get(major, read[2])(header)
        except (ValueError, KeyError, OSError, SyntaxError) as exc:
            raise Invalid(f"body is not a readable .npy file: {exc}", [_NOT_NPY]) from None
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiub":
            raise Invalid(
                "the .npy array must hold numbers",
                [FieldError("#/", f"dtype {dtype} is not a number type")],
            )
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise Invalid(
                f"data must be a non-empty 2-D matrix; got shape {shape}",
                [FieldError("#/data", "must be a non-empty 2-D matrix")],
            )
        if fortran_order and min(shape) > 1:
            raise Invalid(
                "a Fortran-order .npy cannot be streamed row by row; "
                "save it in C order (np.save(path, np.ascontiguousarray(x)))",
                [FieldError("#/", "must be a C-order .npy file")],
            )
        del self._pending[: header.tell()]
        self._dtype, self._shape = dtype, (int(shape[0]), int(shape[1]))
        self._row_bytes = dtype.itemsize * self._shape[1]
        self._rows.start(self._shape[1], "#/data/0")
        return True

    def finish_rows(self) -> None:
        if self._dtype is None:
            raise Invalid("body is not a readable .npy file: it ends in its header", [_NOT_NPY])
        if self._pending or self._rows.n_rows != self._shape[0]:
            raise Invalid(
                f"the .npy body is truncated: its header declares {self._shape[0]} rows, "
                f"it holds {self._rows.n_rows}",
                [_NOT_NPY],
            )


# --- CSV ------------------------------------------------------------------------------


class CsvUpload(_Streamed):
    """A CSV body (:data:`~service.matrices.CSV_PATTERN`) parsed line by line as it arrives.

    An optional header line (any first line that is not a row of numbers), then
    rows of comma-separated numbers, all of one width; no blank lines. Rows are
    numbered from 0 after the header, as ``#/data/<row>/<column>``.
    """

    def __init__(self, make_writer, **options) -> None:
        super().__init__(make_writer, **options)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._tail = ""
        self._first_line = True
        self._width = 0
        self._row = 0  # the index of the next data row

    def feed(self, data: bytes) -> None:
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError:
            raise Invalid("CSV body must be UTF-8 text", [FieldError("#/", "not UTF-8")]) from None
        lines = _LINE_BREAK.split(self._tail + text)
        self._tail = lines.pop()  # the line still arriving
        self._parse(lines)

    def _parse(self, lines: list[str]) -> None:
        if self._first_line and lines:
            lines[0] = lines[0].removeprefix("\ufeff")
            if "\r" not in lines[0] and _CSV_ROW.fullmatch(lines[0]) is None:
                lines = lines[1:]  # a header
            self._first_line = False
        if not lines:
            return
        problems: list[FieldError] = []
        for i, line in enumerate(lines):
            row = self._row + i
            if _CSV_ROW.fullmatch(line) is None:
                problems.append(_csv_problem(row, line))
            elif self._width and line.count(",") + 1 != self._width:
                problems.append(
                    FieldError(
                        f"#/data/{row}",
                        f"has {line.count(',') + 1} values; row 0 has {self._width}",
                    )
                )
            elif not self._width:
                self._width = line.count(",") + 1
                self._rows.start(self._width, "#/data/0")
            if len(problems) >= 20:
                break
        if problems:
            raise Invalid("CSV rows must hold comma-separated numbers", problems)
        values = np.array(",".join(lines).split(","), dtype=np.float64)
        self._rows.append(values.reshape(len(lines), self._width))
        self._row += len(lines)

    def finish_rows(self) -> None:
        try:
            last = self._tail + self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Invalid("CSV body must be UTF-8 text", [FieldError("#/", "not UTF-8")]) from None
        self._tail = ""
        if last:
            self._parse([last])
        if self._rows.n_rows == 0:
            raise Invalid(
                "CSV body has no rows of numbers", [FieldError("#/", "needs at least one row")]
            )
