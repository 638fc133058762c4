"""The blob store: dataset matrices as row chunks of ``.npy`` files, in a folder or S3.

A dataset's rows live under ``<store url>/<dataset id>/`` as ``000000.npy``,
``000001.npy``, ... each a C-order float64 matrix of about ``chunk_bytes``
(64 MiB by default); the database keeps the rows of each chunk, the shape
and the SHA-256 of the whole matrix's float64 bytes (the same hash as when
matrices were stored whole). Any fsspec URL works: a local path (the default,
a folder under the data dir) or ``s3://bucket/prefix`` (s3fs; an endpoint
URL for S3-compatible servers such as MinIO).

Chunks are written by a :class:`MatrixWriter`, rows appended as they arrive
(an upload or an import streams through one: at most one chunk is ever held
in memory), and read by :class:`ChunkReader` callables: small, picklable,
so a Dask worker reads the chunk itself, where it runs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from .gmm.chunked import ChunkedData

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "BlobStore",
    "ChunkReader",
    "MatrixWriter",
    "StoredMatrix",
    "WrittenMatrix",
    "default_storage_url",
]

DEFAULT_CHUNK_BYTES = 64 * 2**20


def default_storage_url(database_url: str | None, data_dir: Path) -> str:
    """Where chunks go when ``GMM_STORAGE_URL`` is unset: ``datasets/`` beside a SQLite
    database file, else under the data dir."""
    if database_url and database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            return str(Path(path).absolute().parent / "datasets")
    return str((data_dir / "datasets").absolute())


def _npy_header(n_rows: int, n_features: int) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype("<f8")),
            "fortran_order": False,
            "shape": (n_rows, n_features),
        },
    )
    return header.getvalue()


@dataclass(frozen=True)
class ChunkReader:
    """Reads one stored chunk: ``reader()`` is an ndarray of shape (n_rows, n_features).

    Picklable (a URL and options), so Dask workers read their chunks themselves.
    ``row_offset`` is the chunk's first row in the dataset.
    """

    url: str
    n_rows: int
    n_features: int
    row_offset: int = 0
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> np.ndarray:
        fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
        with fs.open(path, "rb") as handle:
            chunk = np.lib.format.read_array(handle, allow_pickle=False)
        if chunk.shape != (self.n_rows, self.n_features) or chunk.dtype != np.float64:
            raise OSError(
                f"stored chunk {self.url} holds {chunk.dtype} {chunk.shape}; "
                f"expected float64 ({self.n_rows}, {self.n_features})"
            )
        return chunk


@dataclass(frozen=True)
class WrittenMatrix:
    """What a :class:`MatrixWriter` stored: the chunks' rows and the matrix's hash."""

    chunk_rows: list[int]
    n_features: int
    sha256: str

    @property
    def n_samples(self) -> int:
        return sum(self.chunk_rows)

    @property
    def size_bytes(self) -> int:
        return 8 * self.n_samples * self.n_features


@dataclass(frozen=True)
class StoredMatrix:
    """A dataset's matrix of shape (n_samples, n_features), as stored chunks."""

    chunks: tuple[ChunkReader, ...]
    n_features: int

    @property
    def n_samples(self) -> int:
        return sum(chunk.n_rows for chunk in self.chunks)

    @property
    def nbytes(self) -> int:
        return 8 * self.n_samples * self.n_features

    def read_chunk(self, index: int) -> np.ndarray:
        return self.chunks[index]()

    def iter_chunks(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            yield chunk()

    def read_all(self) -> np.ndarray:
        """The whole matrix in memory (for data under ``GMM_IN_MEMORY_MAX_BYTES``)."""
        matrix = np.empty((self.n_samples, self.n_features))
        start = 0
        for chunk in self.iter_chunks():
            matrix[start : start + len(chunk)] = chunk
            start += len(chunk)
        return matrix

    def chunked(self) -> ChunkedData:
        """The rows for an out-of-core (or Dask) fit: each chunk read when a pass needs it."""
        return ChunkedData(self.chunks, [c.n_rows for c in self.chunks], self.n_features)


class BlobStore:
    """Row chunks of dataset matrices under one fsspec URL.

    Parameters
    ----------
    url : str
        A folder (path or ``file://``) or ``s3://bucket/prefix``.
    chunk_bytes : int
        Target size of one chunk (rows of ``8 * n_features`` bytes; at least one row).
    storage_options : dict, optional
        fsspec options (for s3fs: ``client_kwargs={"endpoint_url": ...}``, ``key``...).
    """

    def __init__(
        self,
        url: str,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.chunk_bytes = chunk_bytes
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        url = settings.resolved_storage_url
        options: dict[str, Any] = {}
        if url.startswith("s3://") and settings.s3_endpoint_url:
            options["client_kwargs"] = {"endpoint_url": settings.s3_endpoint_url}
        return cls(url, chunk_bytes=settings.chunk_bytes, storage_options=options)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # --- names ---------------------------------------------------------------------

    def _folder(self, dataset_id: str) -> str:
        return f"{self.root}/{dataset_id}"

    def chunk_url(self, dataset_id: str, index: int) -> str:
        return f"{self.url}/{dataset_id}/{index:06d}.npy"

    def rows_per_chunk(self, n_features: int) -> int:
        return max(1, self.chunk_bytes // (8 * n_features))

    # --- writing -------------------------------------------------------------------

    def writer(self, dataset_id: str, n_features: int) -> MatrixWriter:
        return MatrixWriter(self, dataset_id, n_features)

    def write_matrix(self, dataset_id: str, matrix: np.ndarray) -> WrittenMatrix:
        """Store a matrix already in memory."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float64)
        writer = self.writer(dataset_id, matrix.shape[1])
        try:
            writer.append(matrix)
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def write_chunk(self, dataset_id: str, index: int, rows: np.ndarray) -> None:
        folder = self._folder(dataset_id)
        if index == 0:
            self.fs.makedirs(folder, exist_ok=True)
        with self.fs.open(f"{folder}/{index:06d}.npy", "wb") as handle:
            handle.write(_npy_header(*rows.shape))
            handle.write(memoryview(np.ascontiguousarray(rows)).cast("B"))

    # --- reading -------------------------------------------------------------------

    def stored_matrix(
        self, dataset_id: str, chunk_rows: Sequence[int], n_features: int
    ) -> StoredMatrix:
        offsets = np.concatenate([[0], np.cumsum(chunk_rows, dtype=np.int64)])
        return StoredMatrix(
            tuple(
                ChunkReader(
                    self.chunk_url(dataset_id, i),
                    int(rows),
                    n_features,
                    int(offsets[i]),
                    self.storage_options,
                )
                for i, rows in enumerate(chunk_rows)
            ),
            n_features,
        )

    def delete(self, dataset_id: str) -> None:
        """Remove a dataset's chunks (nothing if there are none)."""
        folder = self._folder(dataset_id)
        try:
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)
        except FileNotFoundError:
            pass

    def exists(self, dataset_id: str) -> bool:
        return bool(self.fs.exists(self._folder(dataset_id)))

    # --- listing -------------------------------------------------------------------

    def dataset_ids(self) -> list[str]:
        """The datasets that have a folder of chunks in the store (listed afresh)."""
        names = self._listing(self.root, detail=False)
        return sorted(name.rstrip("/").rsplit("/", 1)[-1] for name in names)

    def last_written(self, dataset_id: str) -> datetime | None:
        """When the newest chunk of a dataset was written (None: no chunk)."""
        entries = self._listing(self._folder(dataset_id), detail=True)
        times = [_modified(entry) for entry in entries if entry.get("type") == "file"]
        return max(times) if times else None

    def _listing(self, path: str, *, detail: bool) -> list:
        """``fs.ls(path)`` past fsspec's listing cache; empty when ``path`` is not there."""
        self.fs.invalidate_cache(path)
        try:
            return self.fs.ls(path, detail=detail)
        except FileNotFoundError:
            return []


def _modified(entry: dict[str, Any]) -> datetime:
    """A listing entry's modification time: ``mtime`` (a local folder) or
    ``LastModified`` (S3)."""
    if "LastModified" in entry:
        return entry["LastModified"].astimezone(UTC)
    return datetime.fromtimestamp(entry["mtime"], tz=UTC)


class MatrixWriter:
    """Rows appended in order, written out a chunk at a time; the SHA-256 kept as they pass.

    Holds at most one chunk of rows (``np.empty``: pages are only touched as rows
    arrive, so a small dataset costs what it holds).
    """

    def __init__(self, store: BlobStore, dataset_id: str, n_features: int) -> None:
        self.store = store
        self.dataset_id = dataset_id
        self.n_features = n_features
        self._capacity = store.rows_per_chunk(n_features)
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self._chunk_rows: list[int] = []
        self._digest = hashlib.sha256()

    @property
    def n_samples(self) -> int:
        return sum(self._chunk_rows) + self._filled

    def append(self, rows: np.ndarray) -> None:
        """Add rows of shape (n_rows, n_features), float64 and finite (the caller checks)."""
        start = 0
        while start < len(rows):
            if self._buffer is None:
                self._buffer = np.empty((self._capacity, self.n_features))
            take = min(len(rows) - start, self._capacity - self._filled)
            self._buffer[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == self._capacity:
                self._flush()

    def _flush(self) -> None:
        if self._filled == 0 or self._buffer is None:
            return
        rows = self._buffer[: self._filled]
        self._digest.update(memoryview(rows).cast("B"))
        self.store.write_chunk(self.dataset_id, len(self._chunk_rows), rows)
        self._chunk_rows.append(self._filled)
        self._filled = 0

    def close(self) -> WrittenMatrix:
        self._flush()
        self._buffer = None
        return WrittenMatrix(list(self._chunk_rows), self.n_features, self._digest.hexdigest())

    def abort(self) -> None:
        """Forget everything written so far."""
        self._buffer = None
        self.store.delete(self.dataset_id)
