"""/v1/datasets: JSON, CSV or .npy matrices, stored once and fitted many times."""

from __future__ import annotations

import io
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from ... import datasets
from ...config import Settings
from ...db import Database
from ...idempotency import Answer, fingerprint, run_once
from ...matrices import (
    CSV_PATTERN,
    fast_json_matrix,
    matrix_from_csv,
    matrix_from_npy,
    matrix_from_rows,
)
from ..bodies import NPY_BODY, UnsupportedMediaType, content_type_of, is_json, parse_json
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
from ..schemas import RECTANGULAR, DatasetCreate, DatasetList, DatasetRead

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

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
                        "a CSV body has at most GMM_MAX_ROWS rows and GMM_MAX_FEATURES "
                        "columns, and its numbers are within float64's range",
                    ],
                },
                "example": "x,y\n0.1,2.0\n0.3,1.5\n",
            },
            "application/x-npy": {"schema": NPY_BODY},
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
    if not (is_json(content_type) or content_type in _CSV_TYPES or content_type in _NPY_TYPES):
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


def _store(
    database: Database,
    settings: Settings,
    tenant: str,
    content_type: str,
    name: str | None,
    idempotency_key: str | None,
    holder: list[bytearray],
) -> Answer:
    """Parse, validate and store an uploaded matrix; holds the body only while parsing.

    Memory: the body, the matrix (8 bytes a number) and its ``.npy`` blob; a
    JSON body is parsed by simdjson straight into the matrix (no Python object
    per number), with Pydantic's validation only to name what is wrong.
    """
    body = holder.pop()
    request_fingerprint = fingerprint(content_type, name or "", body)
    limits = dict(max_rows=settings.max_rows, max_features=settings.max_features)
    if is_json(content_type):
        matrix, name = _json_matrix(body, name, limits)
    elif content_type in _CSV_TYPES:
        matrix = matrix_from_csv(bytes(body), **limits)
    else:
        matrix = _npy_matrix(body, limits)
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


def _npy_matrix(body: bytearray, limits: dict[str, int]) -> np.ndarray:
    """A float64 ``.npy`` body read in place (the matrix is the body's memory, no copy);
    any other ``.npy`` goes through ``matrix_from_npy``, which also names what is wrong."""
    try:
        header = io.BytesIO(bytes(body[:_NPY_HEADER_MAX]))
        major, _ = np.lib.format.read_magic(header)
        read_header = {
            1: np.lib.format.read_array_header_1_0,
            2: np.lib.format.read_array_header_2_0,
        }[major]
        shape, fortran_order, dtype = read_header(header)
        n_values = int(np.prod(shape))
        if (
            dtype == np.dtype("<f8")
            and not fortran_order
            and len(shape) == 2
            and 0 < shape[0] <= limits["max_rows"]
            and 0 < shape[1] <= limits["max_features"]
            and header.tell() + 8 * n_values == len(body)
        ):
            matrix = np.frombuffer(body, np.float64, n_values, header.tell()).reshape(shape)
            if np.isfinite(matrix).all():
                return matrix
    except (ValueError, KeyError, OSError):
        pass
    return matrix_from_npy(bytes(body), **limits)


_NPY_HEADER_MAX = 2**16 + 16


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
