"""Datasets: stored once, fitted many times."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, undefer

from .db.queries import get_owned
from .db.tables import ACTIVE_JOB_STATUSES, DatasetRow, JobRow, new_id
from .errors import Conflict, NotFound
from .matrices import array_from_blob
from .pagination import Page, paginate

__all__ = ["create_dataset", "delete_dataset", "get_dataset", "list_datasets", "load_matrix"]


def create_dataset(
    *, session: Session, tenant: str, name: str | None, matrix: np.ndarray
) -> DatasetRow:
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    blob = _npy_blob(matrix)
    row = DatasetRow(
        id=new_id("ds"),
        tenant=tenant,
        name=name,
        n_samples=int(matrix.shape[0]),
        n_features=int(matrix.shape[1]),
        sha256=hashlib.sha256(memoryview(matrix).cast("B")).hexdigest(),  # as sha256_of
        size_bytes=int(matrix.nbytes),
        data=blob,
    )
    session.add(row)
    session.flush()
    return row


def _npy_blob(matrix: np.ndarray) -> bytes:
    """The ``.npy`` bytes of a C-contiguous matrix (as ``array_to_blob`` writes them),
    built in one buffer: the header, then the matrix's memory, copied once."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(matrix))
    blob = bytearray(header.getbuffer())
    blob += memoryview(matrix).cast("B")
    return bytes(blob) if len(blob) < 2**20 else blob  # type: ignore[return-value]


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
