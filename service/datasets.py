"""Datasets: stored once (in the blob store, as row chunks), fitted many times."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .blobstore import BlobStore, StoredMatrix, WrittenMatrix
from .db.queries import get_owned
from .db.tables import ACTIVE_JOB_STATUSES, DatasetRow, DatasetStatus, JobRow, new_id
from .errors import Conflict, NotFound
from .pagination import Page, paginate

__all__ = [
    "blob_store_of",
    "create_dataset",
    "delete_dataset",
    "get_dataset",
    "list_datasets",
    "load_matrix",
    "register_dataset",
    "remove_chunks",
    "require_ready",
    "stored_matrix",
    "sweep_chunks",
]

log = logging.getLogger("service.datasets")


def blob_store_of(session: Session) -> BlobStore:
    """The blob store of the :class:`~service.db.Database` the session comes from."""
    return session.info["blob_store"]


def create_dataset(
    *, session: Session, tenant: str, name: str | None, matrix: np.ndarray
) -> DatasetRow:
    """Store an in-memory ``matrix`` (a JSON body) as chunks and its row as ready."""
    dataset_id = new_id("ds")
    store = blob_store_of(session)
    written = store.write_matrix(dataset_id, matrix)
    try:
        return register_dataset(
            session=session, dataset_id=dataset_id, tenant=tenant, name=name, written=written
        )
    except BaseException:
        store.delete(dataset_id)
        raise


def register_dataset(
    *, session: Session, dataset_id: str, tenant: str, name: str | None, written: WrittenMatrix
) -> DatasetRow:
    """The row of a matrix already written to the blob store (a streamed upload)."""
    row = DatasetRow(
        id=dataset_id,
        tenant=tenant,
        name=name,
        n_samples=written.n_samples,
        n_features=written.n_features,
        sha256=written.sha256,
        size_bytes=written.size_bytes,
        status=DatasetStatus.ready,
        chunks=written.chunk_rows,
    )
    session.add(row)
    session.flush()
    return row


def get_dataset(*, session: Session, tenant: str, dataset_id: str) -> DatasetRow:
    return get_owned(session, DatasetRow, dataset_id, tenant=tenant, noun="dataset")


def require_ready(dataset: DatasetRow) -> None:
    """409 unless the dataset's rows are all stored (not importing, not failed)."""
    if dataset.status != DatasetStatus.ready:
        raise Conflict(
            f"dataset {dataset.id!r} is {dataset.status.value}, not ready; "
            + (
                "wait for its import job to finish"
                if dataset.status == DatasetStatus.importing
                else "its import failed: import it again"
            )
        )


def stored_matrix(*, session: Session, dataset_id: str) -> StoredMatrix:
    """The dataset's chunks, read as they are needed (404 if gone, 409 if not ready)."""
    row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise NotFound(f"dataset {dataset_id!r} does not exist")
    require_ready(row)
    return blob_store_of(session).stored_matrix(row.id, row.chunks or [], row.n_features)


def load_matrix(*, session: Session, dataset_id: str) -> np.ndarray:
    """The whole matrix in memory."""
    return stored_matrix(session=session, dataset_id=dataset_id).read_all()


def list_datasets(*, session: Session, tenant: str, limit: int, cursor: str | None) -> Page:
    statement = select(DatasetRow).where(DatasetRow.tenant == tenant)
    return paginate(session, statement, DatasetRow, limit=limit, cursor=cursor)


def delete_dataset(*, session: Session, tenant: str, dataset_id: str) -> None:
    """Delete a dataset's row; 409 while a queued or running job still needs it.

    The caller removes its chunks (:func:`remove_chunks`) once this is committed:
    a failure in between leaves files nobody points at, never a row without data.
    """
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


def remove_chunks(store: BlobStore, dataset_id: str) -> None:
    """Remove a dataset's chunks, logging (not raising) a failure."""
    try:
        store.delete(dataset_id)
    except OSError:
        log.warning("dataset chunks not removed", extra={"dataset_id": dataset_id}, exc_info=True)


def sweep_chunks(
    *, session: Session, store: BlobStore, now: datetime, grace: timedelta
) -> list[str]:
    """Remove the chunks no ready or importing dataset stands for; the ids removed.

    Such chunks are left when a process dies between writing them and its
    database commit: a worker that died for good in an import (its dataset is
    ``failed``), an API process that died in a streamed upload (chunks are
    written before the dataset's row), or between deleting a dataset's row and
    its chunks. Chunks without a row are left alone until their newest chunk
    is older than ``grace``: an upload still arriving writes a chunk every
    ``GMM_CHUNK_BYTES``, and its row comes with its last one.
    """
    stored = store.dataset_ids()
    if not stored:
        return []
    statuses = dict(
        session.execute(
            select(DatasetRow.id, DatasetRow.status).where(DatasetRow.id.in_(stored))
        ).all()
    )
    removed = []
    for dataset_id in stored:
        status = statuses.get(dataset_id)
        if status in (DatasetStatus.ready, DatasetStatus.importing):
            continue
        if status is None:
            written = store.last_written(dataset_id)
            if written is not None and now - written < grace:
                continue
        remove_chunks(store, dataset_id)
        removed.append(dataset_id)
    return removed
