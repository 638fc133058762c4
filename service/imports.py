"""Imports: a dataset read from Parquet, CSV or ``.npy`` files in S3 or allowed folders.

``POST /v1/datasets/import`` checks the source (a ``file://`` source must lie
under one of ``GMM_IMPORT_ROOTS``; 422 otherwise), creates the dataset with
status ``importing`` and queues a job of kind ``import`` (no model). A worker
runs it (:func:`read_source`): it lists the objects the source names (a glob,
a folder or prefix, or one object), reads them in order, row group by row
group (Parquet, pyarrow), block by block (CSV, pyarrow) or a few megabytes at
a time (``.npy``), checks every value, and appends the rows to the dataset's
chunks; only then does the dataset become ``ready``, in the job's last commit.

Bad input fails the job with a typed error naming the file and the row
(rows count from 0 within each file, after a CSV's header line), the chunks
written so far are removed and the dataset is ``failed``: no partial dataset
is ever ready.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import fsspec
import numpy as np
from sqlalchemy.orm import Session

from .blobstore import MatrixWriter
from .config import Settings
from .db.tables import DatasetRow, DatasetStatus, JobRow, JobStatus, new_id
from .errors import FieldError, Invalid

__all__ = [
    "ImportFailed",
    "check_source",
    "read_source",
    "request_import",
    "storage_options_for",
]

_READ_BYTES = 4 * 2**20  # .npy bytes read at a time
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")  # S3's bucket naming rules


class ImportFailed(Exception):
    """An import that cannot finish: ``kind`` is the job error's type.

    Kinds: ``import_source_missing`` (nothing matches the source),
    ``import_invalid_data`` (a value, column or file that is not a matrix of
    numbers; the detail names the file and row), ``import_unreadable`` (the
    store refused or the file is corrupt).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# --- at request time ------------------------------------------------------------------


def storage_options_for(source: str, settings: Settings) -> dict[str, Any]:
    if source.startswith("s3://") and settings.s3_endpoint_url:
        return {"client_kwargs": {"endpoint_url": settings.s3_endpoint_url}}
    return {}


ARROW_MISSING = (
    "Parquet and CSV imports need pyarrow: pip install 'gmm-service[imports]' "
    "(the image: docker build --build-arg EXTRAS=imports)"
)


def arrow_installed() -> bool:
    """Whether pyarrow (the ``imports`` extra) can be imported here."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow(module: str) -> Any:
    """``pyarrow`` or one of its modules; a failed import job without it (a worker
    built without the ``imports`` extra)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportFailed("import_unreadable", ARROW_MISSING) from None


def check_source(source: str, settings: Settings) -> None:
    """422 unless the source is ``s3://...`` or a ``file://`` path under GMM_IMPORT_ROOTS."""
    try:
        parsed = urlparse(source)
    except ValueError as exc:
        raise Invalid(
            f"source is not a URL: {exc}", [FieldError("#/source", "must be a URL")]
        ) from None
    if parsed.scheme == "s3":
        if _BUCKET.fullmatch(parsed.netloc) is None:
            raise Invalid(
                "an s3:// source needs a bucket name",
                [FieldError("#/source", "must be s3://<bucket>/<key, prefix or glob>")],
            )
        return
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise Invalid(
            "source must be an s3:// or file:/// URL",
            [FieldError("#/source", "must start with s3:// or file:///")],
        )
    try:
        path = Path(unquote(parsed.path)).resolve()  # no way out through .. or symlinks
    except (OSError, RuntimeError, ValueError) as exc:
        raise Invalid(
            f"source path cannot be resolved: {exc}", [FieldError("#/source", "bad path")]
        ) from None
    roots = settings.import_root_paths
    if not any(path == root or root in path.parents for root in roots):
        allowed = ", ".join(str(root) for root in roots) or "none configured"
        raise Invalid(
            f"file source {path} is not under an import root (GMM_IMPORT_ROOTS: {allowed})",
            [FieldError("#/source", "must lie under one of GMM_IMPORT_ROOTS")],
        )


def request_import(
    *,
    session: Session,
    tenant: str,
    settings: Settings,
    source: str,
    format: str,
    columns: list[str] | None,
    name: str | None,
) -> JobRow:
    """Create the dataset (importing) and queue the job that fills it."""
    check_source(source, settings)
    if format != "npy" and not arrow_installed():
        raise Invalid(
            f"{format} imports need pyarrow, which this server does not have",
            [FieldError("#/format", f"{ARROW_MISSING}; npy needs nothing more")],
        )
    if columns is not None and format == "npy":
        raise Invalid(
            "columns apply to Parquet and CSV sources, not .npy",
            [FieldError("#/columns", "must be absent for format npy")],
        )
    dataset = DatasetRow(
        id=new_id("ds"),
        tenant=tenant,
        name=name,
        n_samples=0,
        n_features=0,
        sha256="",
        size_bytes=0,
        status=DatasetStatus.importing,
        chunks=None,
    )
    job = JobRow(
        id=new_id("job"),
        tenant=tenant,
        model_id=None,
        dataset_id=dataset.id,
        kind="import",
        options={"source": source, "format": format, "columns": columns},
        status=JobStatus.queued,
        progress={
            "init": 0,
            "n_init": 1,
            "iteration": 0,
            "max_iter": 0,
            "lower_bound": None,
            "rows_read": 0,
        },
        attempts=0,
        warm_start=False,
        activate=False,
        cancel_requested=False,
    )
    session.add_all([dataset, job])
    session.flush()
    return job


# --- in the worker ----------------------------------------------------------------------


def _list(source: str, storage_options: dict[str, Any]) -> tuple[Any, list[str]]:
    try:
        fs, path = fsspec.core.url_to_fs(source, **storage_options)
        if any(char in path for char in "*?["):
            files = sorted(p for p in fs.glob(path) if fs.isfile(p))
        elif fs.isdir(path):
            files = sorted(p for p in fs.find(path) if not Path(p).name.startswith((".", "_")))
        else:
            files = [path] if fs.isfile(path) else []
    except FileNotFoundError:
        files = []
    except Exception as exc:  # a refused bucket, bad credentials
        raise ImportFailed("import_unreadable", f"cannot list {source}: {exc}") from None
    if not files:
        raise ImportFailed("import_source_missing", f"no file or object matches {source}")
    return fs, files


class _Target:
    """The dataset's writer, made when the first file's width is known."""

    def __init__(self, make_writer: Callable[[int], MatrixWriter], max_features: int) -> None:
        self.make_writer = make_writer
        self.max_features = max_features
        self.writer: MatrixWriter | None = None
        self.names: list[str] | None = None

    def width(self, n_features: int, where: str, names: list[str] | None = None) -> MatrixWriter:
        if n_features > self.max_features:
            raise ImportFailed(
                "import_invalid_data",
                f"{where} has {n_features} columns; the limit is {self.max_features} "
                "(GMM_MAX_FEATURES): choose some with 'columns'",
            )
        if self.writer is None:
            self.writer, self.names = self.make_writer(n_features), names
        elif self.writer.n_features != n_features or (names is not None and names != self.names):
            raise ImportFailed(
                "import_invalid_data",
                f"{where} has columns {names or n_features} but the first file has "
                f"{self.names or self.writer.n_features}: every file (and row group) must "
                "have the same columns",
            )
        return self.writer


def _append(writer: MatrixWriter, rows: np.ndarray, where: str, first_row: int, names) -> None:
    finite = np.isfinite(rows)
    if not finite.all():
        i, j = np.argwhere(~finite)[0]
        column = names[j] if names else j
        raise ImportFailed(
            "import_invalid_data",
            f"{where}: row {first_row + i}, column {column!r} is {rows[i, j]}, not a finite number",
        )
    writer.append(rows)


def _is_number(arrow_type) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
        or pa.types.is_decimal(arrow_type)
    )


def _read_parquet(fs, path: str, columns: list[str] | None, target: _Target, tick) -> None:
    pq = _arrow("pyarrow.parquet")

    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        schema = parquet.schema_arrow
        names = columns or list(schema.names)
        missing = [name for name in names if name not in schema.names]
        if missing:
            raise ImportFailed(
                "import_invalid_data", f"{path}: no column {missing[0]!r} (it has {schema.names})"
            )
        for name in names:
            kind = schema.field(name).type
            if not _is_number(kind):
                raise ImportFailed(
                    "import_invalid_data",
                    f"{path}: column {name!r} holds {kind}, not numbers; "
                    "list the numeric columns in 'columns'",
                )
        writer = target.width(len(names), path, names)
        row = 0
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=names)
            rows = np.empty((table.num_rows, len(names)))
            for j, column in enumerate(table.columns):
                if column.null_count:
                    first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
                    raise ImportFailed(
                        "import_invalid_data",
                        f"{path}: row {row + first}, column {names[j]!r} is null",
                    )
                rows[:, j] = column.to_numpy(zero_copy_only=False)
            _append(writer, rows, path, row, names)
            row += table.num_rows
            tick(table.num_rows)


def _first_bad_number(values: list[str]) -> int:
    for i, value in enumerate(values):
        try:
            float(value)
        except (TypeError, ValueError):
            return i
    return 0


def _read_csv(fs, path: str, columns: list[str] | None, target: _Target, tick) -> None:
    pa, pc, pcsv = (_arrow(module) for module in ("pyarrow", "pyarrow.compute", "pyarrow.csv"))

    with fs.open(path, "rb") as handle:
        header = handle.readline().decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    names_in_file = [name.strip().strip('"') for name in header.split(",")]
    names = columns or names_in_file
    missing = [name for name in names if name not in names_in_file]
    if missing:
        raise ImportFailed(
            "import_invalid_data", f"{path}: no column {missing[0]!r} (it has {names_in_file})"
        )
    writer = target.width(len(names), path, names)
    invalid: list[Any] = []

    def on_invalid_row(row) -> str:
        invalid.append(row)
        return "error"

    row = 0
    with fs.open(path, "rb") as handle:
        try:
            reader = pcsv.open_csv(
                handle,
                read_options=pcsv.ReadOptions(
                    block_size=4 * 2**20, use_threads=False
                ),  # line numbers
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid_row),
                convert_options=pcsv.ConvertOptions(
                    include_columns=names,
                    column_types={name: pa.string() for name in names},
                    strings_can_be_null=False,
                ),
            )
            for batch in reader:
                rows = np.empty((batch.num_rows, len(names)))
                for j, name in enumerate(names):
                    text = batch.column(batch.schema.get_field_index(name))
                    try:
                        rows[:, j] = pc.cast(pc.utf8_trim_whitespace(text), pa.float64()).to_numpy(
                            zero_copy_only=False
                        )
                    except pa.ArrowInvalid:
                        i = _first_bad_number(text.to_pylist())
                        raise ImportFailed(
                            "import_invalid_data",
                            f"{path}: row {row + i} (line {row + i + 2}), column {name!r}: "
                            f"{text[i].as_py()[:40]!r} is not a number",
                        ) from None
                _append(writer, rows, path, row, names)
                row += batch.num_rows
                tick(batch.num_rows)
        except pa.ArrowInvalid as exc:
            if invalid:
                bad = invalid[0]
                line = f" (line {bad.number})" if bad.number is not None else ""
                raise ImportFailed(
                    "import_invalid_data",
                    f"{path}: a row{line} has {bad.actual_columns} values, not "
                    f"{bad.expected_columns}: {bad.text[:60]!r}",
                ) from None
            raise ImportFailed("import_invalid_data", f"{path}: {exc}") from None


def _read_npy(fs, path: str, target: _Target, tick, max_features: int) -> None:
    from .uploads import NpyUpload

    upload = NpyUpload(lambda n_features: target.width(n_features, path), max_features=max_features)
    try:
        with fs.open(path, "rb") as handle:
            while data := handle.read(_READ_BYTES):
                before = upload.rows_stored
                upload.feed(data)
                tick(upload.rows_stored - before)
        upload.finish_rows()
    except Invalid as exc:
        raise ImportFailed("import_invalid_data", f"{path}: {_invalid_detail(exc)}") from None


def _invalid_detail(exc: Invalid) -> str:
    errors = getattr(exc, "errors", None) or []
    pointers = [e.pointer for e in errors if e.pointer.startswith("#/data/")]
    if pointers:
        parts = pointers[0].split("/")
        where = f"row {parts[2]}" + (f", column {parts[3]}" if len(parts) > 3 else "")
        return f"{where}: {exc}"
    return str(exc)


def read_source(
    *,
    source: str,
    format: str,
    columns: list[str] | None,
    storage_options: dict[str, Any],
    make_writer: Callable[[int], MatrixWriter],
    progress: Callable[[int, int, int], bool],
    max_features: int,
) -> tuple[MatrixWriter, int]:
    """Read every file the source names into one writer; returns it (not yet closed)
    and the number of files.

    ``progress(files_done, files_total, rows_read)`` is called as rows arrive;
    a False return stops the import (:class:`ImportCancelled`).
    """
    fs, files = _list(source, storage_options)
    target = _Target(make_writer, max_features)
    done = 0
    rows_read = 0

    def tick(rows: int) -> None:
        nonlocal rows_read
        rows_read += rows
        if not progress(done, len(files), rows_read):
            raise ImportCancelled()

    for path in files:
        try:
            if format == "parquet":
                _read_parquet(fs, path, columns, target, tick)
            elif format == "csv":
                _read_csv(fs, path, columns, target, tick)
            else:
                _read_npy(fs, path, target, tick, max_features)
        except (ImportFailed, ImportCancelled):
            raise
        except FileNotFoundError:
            raise ImportFailed("import_source_missing", f"{path} disappeared") from None
        except Exception as exc:
            raise ImportFailed("import_unreadable", f"{path}: {exc}") from None
        done += 1
        tick(0)
    if target.writer is None or target.writer.n_samples == 0:
        raise ImportFailed("import_invalid_data", f"{source} holds no rows")
    return target.writer, len(files)


class ImportCancelled(Exception):
    """The job was cancelled, lost, or the worker is stopping."""
