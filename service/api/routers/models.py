"""/v1/models: create, fit (asynchronously), and manage versions; inference is in inference.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ... import models, updates, versions
from ...db.tables import JobRow, ModelRow, ModelVersionRow
from ...idempotency import Answer, fingerprint, run_once
from ...matrices import matrix_from_rows
from ..bodies import JsonBody, json_body_openapi
from ..deps import (
    CursorQuery,
    DatabaseDep,
    IdempotencyKeyHeader,
    LimitQuery,
    SettingsDep,
    TenantDep,
    VersionPath,
)
from ..problems import problems
from ..responses import answer_response
from ..schemas import (
    ActivateRequest,
    FitRequest,
    JobRead,
    ModelCreate,
    ModelList,
    ModelRead,
    ModelVersionList,
    ModelVersionRead,
    ParametersImport,
    SelectRequest,
    UpdateRequest,
)

router = APIRouter(prefix="/v1/models", tags=["models"])

# Bodies that carry matrices are parsed from the raw bytes by Pydantic (see bodies.py).
FitBody = JsonBody(FitRequest)
SelectBody = JsonBody(SelectRequest)
UpdateBody = JsonBody(UpdateRequest)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelRead,
    responses=problems(413, 422),
    summary="Create an unfitted model",
)
def create_model(
    body: ModelCreate,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def run(session: Session) -> Answer:
        row = models.create_model(
            session=session, tenant=tenant, config=body.model_dump(), settings=settings
        )
        headers = {"Location": f"/v1/models/{row.id}", "ETag": models.model_etag(row)}
        return Answer(201, ModelRead.model_validate(row).model_dump(mode="json"), headers)

    return answer_response(
        run_once(
            database=database,
            scope=f"{tenant} POST /v1/models",
            key=idempotency_key,
            request_fingerprint=fingerprint(body.model_dump_json()),
            run=run,
        )
    )


@router.get("", response_model=ModelList, responses=problems(422), summary="List models")
def list_models(
    database: DatabaseDep, tenant: TenantDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> ModelList:
    with database.session() as session:
        page = models.list_models(session=session, tenant=tenant, limit=limit, cursor=cursor)
        return ModelList(
            items=[ModelRead.model_validate(r) for r in page], next_cursor=page.next_cursor
        )


@router.get(
    "/{model_id}", response_model=ModelRead, responses=problems(404, 422), summary="Read a model"
)
def get_model(
    model_id: str, response: Response, database: DatabaseDep, tenant: TenantDep
) -> ModelRead:
    with database.session() as session:
        row = models.get_model(session=session, tenant=tenant, model_id=model_id)
        response.headers["ETag"] = models.model_etag(row)
        return ModelRead.model_validate(row)


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(404, 412, 422),
    summary="Delete a model with its parameters and jobs",
)
def delete_model(
    model_id: str,
    database: DatabaseDep,
    tenant: TenantDep,
    if_match: Annotated[
        str | None, Header(description="Delete only if the model's ETag still matches.")
    ] = None,
) -> Response:
    with database.session() as session:
        models.delete_model(session=session, tenant=tenant, model_id=model_id, if_match=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _queue_job(
    *,
    body: FitRequest | SelectRequest | UpdateRequest,
    path: str,
    database: DatabaseDep,
    tenant: str,
    settings: SettingsDep,
    idempotency_key: str | None,
    request_job: Callable[[Session, np.ndarray | None], JobRow],
) -> JSONResponse:
    """202 with the queued Job (once per Idempotency-Key); the data checked first."""
    data = None
    if body.data is not None:
        data = matrix_from_rows(
            body.data, max_rows=settings.max_rows, max_features=settings.max_features
        )

    def run(session: Session) -> Answer:
        job = request_job(session, data)
        job_json = JobRead.model_validate(job).model_dump(mode="json")
        return Answer(202, job_json, {"Location": f"/v1/jobs/{job.id}"})

    return answer_response(
        run_once(
            database=database,
            scope=f"{tenant} POST {path}",
            key=idempotency_key,
            request_fingerprint=fingerprint(body.model_dump_json()),
            run=run,
        )
    )


@router.post(
    "/{model_id}/fit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(FitRequest),
    summary="Queue a fit; poll the job at Location",
)
def fit_model(
    model_id: str,
    body: FitBody,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def request_job(session: Session, data: np.ndarray | None) -> JobRow:
        return models.request_fit(
            session=session,
            tenant=tenant,
            model_id=model_id,
            dataset_id=body.dataset_id,
            data=data,
            sample_weight=body.sample_weight,
            warm_start=body.warm_start,
            activate=body.activate,
        )

    return _queue_job(
        body=body,
        path=f"/v1/models/{model_id}/fit",
        database=database,
        tenant=tenant,
        settings=settings,
        idempotency_key=idempotency_key,
        request_job=request_job,
    )


@router.post(
    "/{model_id}/select",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(SelectRequest),
    summary="Queue a model selection over n_components and covariance types",
)
def select_model(
    model_id: str,
    body: SelectBody,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    def request_job(session: Session, data: np.ndarray | None) -> JobRow:
        return models.request_select(
            session=session,
            tenant=tenant,
            model_id=model_id,
            dataset_id=body.dataset_id,
            data=data,
            sample_weight=body.sample_weight,
            n_components=body.grid(settings.max_components),
            covariance_types=body.covariance_types,
            criterion=body.criterion,
            n_init=body.n_init,
            random_state=body.random_state,
            activate=body.activate,
            settings=settings,
        )

    return _queue_job(
        body=body,
        path=f"/v1/models/{model_id}/select",
        database=database,
        tenant=tenant,
        settings=settings,
        idempotency_key=idempotency_key,
        request_job=request_job,
    )


@router.post(
    "/{model_id}/update",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=problems(404, 409, 413, 415, 422),
    openapi_extra=json_body_openapi(UpdateRequest),
    summary="Queue an incremental update of the active version with new rows (stepwise EM)",
)
def update_model(
    model_id: str,
    body: UpdateBody,
    database: DatabaseDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """One stepwise-EM step from the active version; the job makes a new version
    (source ``update``). See ``learning_rate`` for how much of the past it forgets."""

    def request_job(session: Session, data: np.ndarray | None) -> JobRow:
        return updates.request_update(
            session=session,
            tenant=tenant,
            model_id=model_id,
            dataset_id=body.dataset_id,
            data=data,
            learning_rate=body.learning_rate,
            activate=body.activate,
        )

    return _queue_job(
        body=body,
        path=f"/v1/models/{model_id}/update",
        database=database,
        tenant=tenant,
        settings=settings,
        idempotency_key=idempotency_key,
        request_job=request_job,
    )


# --- versions -------------------------------------------------------------------------


def _version_read(row: ModelVersionRow, active_version: int | None) -> ModelVersionRead:
    return ModelVersionRead(
        version=row.version,
        active=row.version == active_version,
        source=row.source.value,
        created_at=row.created_at,
        job_id=row.job_id,
        dataset_id=row.dataset_id,
        dataset_sha256=row.dataset_sha256,
        n_features=row.n_features,
        config=row.config,
        fit_summary=row.fit_summary,
        anomaly_threshold=row.anomaly_threshold,
    )


@router.get(
    "/{model_id}/versions",
    response_model=ModelVersionList,
    responses=problems(404, 422),
    summary="The model's versions, newest first",
)
def list_versions(
    model_id: str,
    database: DatabaseDep,
    tenant: TenantDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ModelVersionList:
    with database.session() as session:
        page = versions.list_versions(
            session=session, tenant=tenant, model_id=model_id, limit=limit, cursor=cursor
        )
        active = session.get(ModelRow, model_id).active_version
        return ModelVersionList(
            items=[_version_read(row, active) for row in page], next_cursor=page.next_cursor
        )


@router.get(
    "/{model_id}/versions/{version}",
    response_model=ModelVersionRead,
    responses=problems(404, 422),
    summary="One version of the model",
)
def get_version(
    model_id: str, version: VersionPath, database: DatabaseDep, tenant: TenantDep
) -> ModelVersionRead:
    with database.session() as session:
        row = versions.get_version(
            session=session, tenant=tenant, model_id=model_id, version=version
        )
        return _version_read(row, session.get(ModelRow, model_id).active_version)


@router.delete(
    "/{model_id}/versions/{version}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(404, 409, 422),
    summary="Forget a version (not the active one)",
)
def delete_version(
    model_id: str, version: VersionPath, database: DatabaseDep, tenant: TenantDep
) -> Response:
    with database.session() as session:
        versions.delete_version(session=session, tenant=tenant, model_id=model_id, version=version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{model_id}/activate",
    response_model=ModelRead,
    responses=problems(404, 422),
    summary="Serve another version: roll back or promote",
)
def activate(
    model_id: str,
    body: ActivateRequest,
    response: Response,
    database: DatabaseDep,
    tenant: TenantDep,
) -> ModelRead:
    with database.session() as session:
        row = versions.activate(
            session=session, tenant=tenant, model_id=model_id, version=body.version
        )
        response.headers["ETag"] = models.model_etag(row)
        return ModelRead.model_validate(row)


@router.post(
    "/{model_id}/parameters",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelVersionRead,
    responses=problems(404, 413, 422),
    summary="Import a mixture fitted elsewhere as a new version",
)
def import_parameters(
    model_id: str, body: ParametersImport, database: DatabaseDep, tenant: TenantDep
) -> ModelVersionRead:
    arrays = body.model_dump(exclude={"anomaly_threshold", "activate"}, exclude_none=True)
    with database.session() as session:
        row = versions.import_parameters(
            session=session,
            tenant=tenant,
            model_id=model_id,
            arrays=arrays,
            anomaly_threshold=body.anomaly_threshold,
            activate=body.activate,
        )
        return _version_read(row, session.get(ModelRow, model_id).active_version)
