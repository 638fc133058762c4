"""/v1/datasets: JSON, CSV or .npy matrices, stored once and fitted many times."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ... import datasets
from ...idempotency import Answer, fingerprint, run_once
from ...matrices import CSV_PATTERN, matrix_from_csv, matrix_from_npy, matrix_from_rows
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
    body = await request.body()
    limits = dict(max_rows=settings.max_rows, max_features=settings.max_features)
    if is_json(content_type):
        parsed = parse_json(DatasetCreate, body)
        matrix = matrix_from_rows(parsed.data, **limits)
        name = parsed.name if parsed.name is not None else name
    elif content_type in ("text/csv", "text/plain"):
        matrix = matrix_from_csv(body, **limits)
    elif content_type in ("application/x-npy", "application/octet-stream"):
        matrix = matrix_from_npy(body, **limits)
    else:
        raise UnsupportedMediaType(content_type, "application/json, text/csv or application/x-npy")

    def run(session: Session) -> Answer:
        row = datasets.create_dataset(session=session, tenant=tenant, name=name, matrix=matrix)
        headers = {"Location": f"/v1/datasets/{row.id}"}
        return Answer(201, DatasetRead.model_validate(row).model_dump(mode="json"), headers)

    return answer_response(
        run_once(
            database=database,
            scope=f"{tenant} POST /v1/datasets",
            key=idempotency_key,
            request_fingerprint=fingerprint(content_type, name or "", body),
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
    responses=problems(404, 422),
    summary="Delete a dataset",
)
def delete_dataset(dataset_id: str, database: DatabaseDep, tenant: TenantDep) -> Response:
    with database.session() as session:
        datasets.delete_dataset(session=session, tenant=tenant, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
