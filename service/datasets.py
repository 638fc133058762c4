"""Datasets: stored once, fitted many times."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session, undefer

from .db.queries import get_owned
from .db.tables import ACTIVE_JOB_STATUSES, DatasetRow, JobRow, new_id
from .errors import Conflict, NotFound
from .matrices import array_from_blob
from .pagination import Page, paginate

__all__ = ["create_dataset", "delete_dataset", "get_dataset", "list_datasets", "load_matrix"]


_CHUNK = 8 * 2**20  # bytes copied at a time: other threads (the event loop) run in between


def create_dataset(
    *, session: Session, tenant: str, name: str | None, matrix: np.ndarray
) -> DatasetRow:
    """Store ``matrix`` as an exact ``.npy`` blob.

    Large matrices are written in chunks, so that no single copy holds the
    interpreter for long: on SQLite straight into the row through SQLite's
    incremental blob I/O (no blob in memory at all), elsewhere into one buffer.
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    header = _npy_header(matrix)
    values = memoryview(matrix).cast("B")
    size = len(header) + len(values)
    in_place = session.get_bind().dialect.name == "sqlite" and size > _CHUNK
    row = DatasetRow(
        id=new_id("ds"),
        tenant=tenant,
        name=name,
        n_samples=int(matrix.shape[0]),
        n_features=int(matrix.shape[1]),
        sha256=hashlib.sha256(values).hexdigest(),  # as matrices.sha256_of, without a copy
        size_bytes=int(matrix.nbytes),
        data=b"" if in_place else _join(header, values),
    )
    session.add(row)
    session.flush()
    if in_place:
        _write_sqlite_blob(session, row.id, header, values)
    return row


def _npy_header(matrix: np.ndarray) -> bytes:
    """The ``.npy`` header ``array_to_blob`` writes before a C-contiguous matrix's bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(matrix))
    return header.getvalue()


def _join(header: bytes, values: memoryview) -> bytes:
    blob = bytearray(len(header) + len(values))
    out = memoryview(blob)
    out[: len(header)] = header
    for start in range(0, len(values), _CHUNK):
        piece = values[start : start + _CHUNK]
        out[len(header) + start : len(header) + start + len(piece)] = piece
    out.release()
    return blob if len(blob) > 2**20 else bytes(blob)  # type: ignore[return-value]


def _write_sqlite_blob(
    session: Session, dataset_id: str, header: bytes, values: memoryview
) -> None:
    size = len(header) + len(values)
    session.execute(
        update(DatasetRow).where(DatasetRow.id == dataset_id).values(data=func.zeroblob(size))
    )
    rowid = session.execute(
        text("SELECT rowid FROM datasets WHERE id = :id"), {"id": dataset_id}
    ).scalar_one()
    raw = session.connection().connection.driver_connection
    with raw.blobopen("datasets", "data", rowid) as blob:
        blob.write(header)
        for start in range(0, len(values), _CHUNK):
            blob.write(values[start : start + _CHUNK])


def get_dataset(*, session: Session, tenant: str, dataset_id: str) -> DatasetRow:
    return get_owned(session, DatasetRow, dataset_id, tenant=tenant, noun="dataset")


def load_matrix(*, session: Session, dataset_id: str) -> np.ndarray:
    row = session.scalars(
        select(DatasetRow).where(DatasetRow.id == dataset_id).options(undefer(DatasetRow.data))
    ).one_or_none()
    if row is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    return array_from_blob(row.data)


def list_datasets(*, session: Session, tenant: str, limit: int, cursor: str | None) -> Page:
    statement = select(DatasetRow).where(DatasetRow.tenant == tenant)
    return paginate(session, statement, DatasetRow, limit=limit, cursor=cursor)


def delete_dataset(*, session: Session, tenant: str, dataset_id: str) -> None:
    """Delete a dataset; 409 while a queued or running job still needs it."""
    needed_by = session.scalar(
        select(JobRow.id)
        .where(
            JobRow.dataset_id == dataset_id,
            JobRow.tenant == tenant,
            JobRow.status.in_(ACTIVE_JOB_STATUSES),
        )
        .limit(1)
    )
    if needed_by is not None:
        raise Conflict(
            f"dataset {dataset_id!r} is needed by job {needed_by!r}, which is queued or running; "
            "wait for it to finish or cancel it"
        )
    deleted = session.execute(
        delete(DatasetRow).where(DatasetRow.id == dataset_id, DatasetRow.tenant == tenant)
    ).rowcount
    if deleted == 0:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
