"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ...db.migrate import head_revision, schema_revision
from ..deps import DatabaseDep, tenant_of
from ..problems import problems
from ..responses import ProblemResponse

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    database: Literal["ok"]
    schema_revision: str | None


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses=problems(503),
    summary="The database is reachable and migrated to head, the embedded worker beating",
)
def readyz(database: DatabaseDep, request: Request):
    try:
        with database.engine.connect() as connection:
            revision = schema_revision(connection)
    except Exception as exc:
        return _not_ready(f"database unreachable: {exc.__class__.__name__}")
    head = head_revision()
    if revision != head:
        return _not_ready(
            f"database schema at {revision}, expected {head}: run gmm-service migrate"
        )
    worker = request.app.state.worker
    if worker is not None and not worker.healthy():
        return _not_ready("the embedded worker is not running or has stopped beating")
    return Readiness(status="ready", database="ok", schema_revision=revision)


def _not_ready(detail: str) -> ProblemResponse:
    return ProblemResponse(
        {
            "type": "/problems/not-ready",
            "title": "Service Unavailable",
            "status": 503,
            "detail": detail,
        },
        status_code=503,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"},
        **problems(401, 404),
    },
    summary="Prometheus metrics (text format)",
)
def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if not settings.metrics_public:
        tenant_of(request, request.headers.get("authorization"))
    if not settings.metrics_enabled:
        return ProblemResponse(
            {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "metrics are disabled (GMM_METRICS_ENABLED)",
            },
            status_code=404,
        )
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
