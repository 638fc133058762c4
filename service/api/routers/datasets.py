"""/v1/datasets: JSON, CSV or .npy matrices, stored once and fitted many times.

JSON bodies are parsed whole (they are bounded by GMM_MAX_BODY_BYTES); CSV and
.npy bodies stream to the blob store as they arrive (:mod:`service.uploads`),
bounded by GMM_MAX_DATASET_BYTES.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from ... import datasets, imports
from ...config import Settings
from ...db import Database
from ...db.tables import new_id
from ...idempotency import Answer, fingerprint, run_once
from ...matrices import CSV_PATTERN, fast_json_matrix, matrix_from_rows
from ...uploads import CsvUpload, DatasetTooLarge, NpyUpload, StreamedMatrix
from ..bodies import (
    NPY_BODY,
    JsonBody,
    UnsupportedMediaType,
    content_type_of,
    is_json,
    json_body_openapi,
    parse_json,
)
from ..deps import (
    CursorQuery,
    DatabaseDep,
    IdempotencyKeyHeader,
    LimitQuery,
    SettingsDep,
    TenantDep,
)
from ..problems import problems
from ..responses import answer_response
from ..schemas import RECTANGULAR, DatasetCreate, DatasetImport, DatasetList, DatasetRead, JobRead

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

STREAMED_NPY_BODY = {
    **NPY_BODY,
    "x-rules": [
        "a .npy body streams to storage: a complete C-order .npy file (no pickles) of a "
        "non-empty 2-D array of finite numbers, at most GMM_MAX_DATASET_BYTES bytes "
        "(413 past it) and GMM_MAX_FEATURES columns"
    ],
}

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DatasetCreate"}},
            "text/csv": {
                "schema": {
                    "type": "string",
                    "pattern": CSV_PATTERN,
                    "description": "An optional header line (any line that is not a row "
                    "of numbers), then one row of comma-separated decimal numbers per "
                    "line; no blank lines. A body that does not match is a 422.",
                    "x-rules": [
                        RECTANGULAR,
                        "a CSV body streams to storage: it has at most GMM_MAX_DATASET_BYTES "
                        "bytes (413 past it) and GMM_MAX_FEATURES columns, and its numbers "
                        "are within float64's range",
                    ],
                },
                "example": "x,y\n0.1,2.0\n0.3,1.5\n",
            },
            "application/x-npy": {"schema": STREAMED_NPY_BODY},
        },
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetRead,
    responses=problems(413, 415, 422),
    openapi_extra=_BODY,
    summary="Store a 2-D float matrix",
)
async def create_dataset(
    request: Request,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    name: Annotated[
        str | None,
        Query(max_length=200, pattern=r"^[^\x00]*$", description="For CSV and .npy bodies."),
    ] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    content_type = content_type_of(request)
    if content_type in _CSV_TYPES or content_type in _NPY_TYPES:
        return answer_response(
            await _stream(request, database, settings, tenant, content_type, name, idempotency_key)
        )
    if not is_json(content_type):
        raise UnsupportedMediaType(content_type, "application/json, text/csv or application/x-npy")
    body = [await read_body(request)]  # handed over (and let go of) in the thread
    # Parsing, validation, hashing and the write run in a worker thread: a large
    # upload must not stop the event loop (health checks, other requests).
    answer = await anyio.to_thread.run_sync(
        _store, database, settings, tenant, content_type, name, idempotency_key, body
    )
    return answer_response(answer)


_CSV_TYPES = ("text/csv", "text/plain")
_NPY_TYPES = ("application/x-npy", "application/octet-stream")
STREAMED_TYPES = _CSV_TYPES + _NPY_TYPES
_FEED_BYTES = 4 * 2**20  # body bytes parsed at a time, in a worker thread


async def _stream(
    request: Request,
    database: Database,
    settings: Settings,
    tenant: str,
    content_type: str,
    name: str | None,
    idempotency_key: str | None,
) -> Answer:
    """Parse a CSV or .npy body as it arrives, its rows written to the blob store.

    Memory: a few megabytes of body and one chunk of rows, whatever the size.
    What was written is removed if the body is bad, too large, or was already
    stored under the same Idempotency-Key.
    """
    dataset_id = new_id("ds")
    kind = CsvUpload if content_type in _CSV_TYPES else NpyUpload
    upload: StreamedMatrix = kind.to_store(
        database.blob_store, dataset_id, max_features=settings.max_features
    )
    digest = hashlib.sha256()

    def feed(data: bytearray) -> None:
        digest.update(data)
        upload.feed(bytes(data))

    try:
        received = 0
        pending = bytearray()
        async for piece in request.stream():
            received += len(piece)
            if received > settings.max_dataset_bytes:
                raise DatasetTooLarge(settings.max_dataset_bytes)
            pending += piece
            if len(pending) >= _FEED_BYTES:
                full, pending = pending, bytearray()
                await anyio.to_thread.run_sync(feed, full)
        await anyio.to_thread.run_sync(feed, pending)
        written = await anyio.to_thread.run_sync(upload.finish)
        request_fingerprint = fingerprint(content_type, name or "", digest.digest())

        def run(session: Session) -> Answer:
            row = datasets.register_dataset(
                session=session, dataset_id=dataset_id, tenant=tenant, name=name, written=written
            )
            headers = {"Location": f"/v1/datasets/{row.id}"}
            return Answer(201, DatasetRead.model_validate(row).model_dump(mode="json"), headers)

        answer = await anyio.to_thread.run_sync(
            lambda: run_once(
                database=database,
                scope=f"{tenant} POST /v1/datasets",
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
                run=run,
            )
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(upload.abort)
        raise
    if answer.body.get("id") != dataset_id:  # an earlier request's answer, replayed
        await anyio.to_thread.run_sync(upload.abort)
    return answer


def _store(
    database: Database,
    settings: Settings,
    tenant: str,
    content_type: str,
    name: str | None,
    idempotency_key: str | None,
    holder: list[bytearray],
) -> Answer:
    """Parse, validate and store a JSON matrix; holds the body only while parsing.

    Memory: the body and the matrix (8 bytes a number); a JSON body is parsed
    by simdjson straight into the matrix (no Python object per number), with
    Pydantic's validation only to name what is wrong.
    """
    body = holder.pop()
    request_fingerprint = fingerprint(content_type, name or "", body)
    limits = dict(max_rows=settings.max_rows, max_features=settings.max_features)
    matrix, name = _json_matrix(body, name, limits)
    del body  # only the matrix from here on

    def run(session: Session) -> Answer:
        row = datasets.create_dataset(session=session, tenant=tenant, name=name, matrix=matrix)
        headers = {"Location": f"/v1/datasets/{row.id}"}
        return Answer(201, DatasetRead.model_validate(row).model_dump(mode="json"), headers)

    return run_once(
        database=database,
        scope=f"{tenant} POST /v1/datasets",
        key=idempotency_key,
        request_fingerprint=request_fingerprint,
        run=run,
    )


def _json_matrix(
    body: bytearray, name: str | None, limits: dict[str, int]
) -> tuple[np.ndarray, str | None]:
    fast = fast_json_matrix(body, n_features=None, **limits)
    if fast is not None:
        matrix, others = fast
        try:  # the other fields, checked as the schema says (a stand-in for the matrix)
            fields = DatasetCreate.model_validate({**others, "data": [[0.0]]})
        except ValidationError:
            pass  # named by the full validation below
        else:
            return matrix, fields.name if fields.name is not None else name
    parsed = parse_json(DatasetCreate, body)
    matrix = matrix_from_rows(parsed.data, **limits)
    return matrix, parsed.name if parsed.name is not None else name


async def read_body(request: Request) -> bytearray:
    """The whole body in one buffer, sized from ``Content-Length`` when it is given
    (no list of chunks joined at the end, which holds the body twice)."""
    try:
        expected = int(request.headers.get("content-length", ""))
    except ValueError:
        expected = -1
    if expected < 0:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
        return body
    body = bytearray(expected)
    view = memoryview(body)
    filled = 0
    async for chunk in request.stream():
        end = filled + len(chunk)
        if end > expected:  # more than announced: h11 refuses this; be safe anyway
            view.release()
            return body[:filled] + chunk
        view[filled:end] = chunk
        filled = end
    view.release()
    if filled < expected:
        del body[filled:]
    return body


ImportBody = JsonBody(DatasetImport)


@router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(413, 415, 422),
    openapi_extra=json_body_openapi(DatasetImport),
    summary="Import a dataset from Parquet, CSV or .npy files (s3:// or allowed file://) as a job",
)
def import_dataset(
    body: ImportBody,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """202 with the import Job; its dataset (``dataset_id``) is ``importing`` until the job
    ends, then ``ready`` or ``failed``. A file:// source outside GMM_IMPORT_ROOTS is a 422."""

    def run(session: Session) -> Answer:
        job = imports.request_import(
            session=session,
            tenant=tenant,
            settings=settings,
            source=body.source,
            format=body.format,
            columns=body.columns,
            name=body.name,
        )
        job_json = JobRead.model_validate(job).model_dump(mode="json")
        return Answer(202, job_json, {"Location": f"/v1/jobs/{job.id}"})

    return answer_response(
        run_once(
            database=database,
            scope=f"{tenant} POST /v1/datasets/import",
            key=idempotency_key,
            request_fingerprint=fingerprint(body.model_dump_json()),
            run=run,
        )
    )


@router.get("", response_model=DatasetList, responses=problems(422), summary="List datasets")
def list_datasets(
    database: DatabaseDep, tenant: TenantDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> DatasetList:
    with database.session() as session:
        page = datasets.list_datasets(session=session, tenant=tenant, limit=limit, cursor=cursor)
        return DatasetList(
            items=[DatasetRead.model_validate(r) for r in page], next_cursor=page.next_cursor
        )


@router.get(
    "/{dataset_id}",
    response_model=DatasetRead,
    responses=problems(404, 422),
    summary="Read a dataset",
)
def get_dataset(dataset_id: str, database: DatabaseDep, tenant: TenantDep) -> DatasetRead:
    with database.session() as session:
        return DatasetRead.model_validate(
            datasets.get_dataset(session=session, tenant=tenant, dataset_id=dataset_id)
        )


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(404, 409, 422),
    summary="Delete a dataset (409 while a queued or running job needs it)",
)
def delete_dataset(dataset_id: str, database: DatabaseDep, tenant: TenantDep) -> Response:
    with database.session() as session:
        datasets.delete_dataset(session=session, tenant=tenant, dataset_id=dataset_id)
    datasets.remove_chunks(database.blob_store, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
