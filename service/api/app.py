"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from ..auth import KeyRing
from ..cache import ModelCache
from ..config import Settings, get_settings
from ..db import Database
from ..metrics import Metrics
from ..serving import VersionResolver
from ..worker import Worker
from .limits import BodySizeLimit
from .observe import RequestObserver
from .problems import install_problem_handlers
from .routers import datasets, health, inference, jobs, models
from .schemas import (
    AnomalyRequest,
    DatasetCreate,
    FitRequest,
    PredictRequest,
    Problem,
    ScoreRequest,
)
from .shutdown import Shutdown

__all__ = ["create_app"]

DESCRIPTION = """Gaussian mixture models as a service: store data, fit mixtures by EM in the
background, then predict clusters, score log-likelihood, flag anomalies and draw samples.
Every error is `application/problem+json` (RFC 9457)."""


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    embedded_worker: bool | None = None,
) -> FastAPI:
    """Build the app. The embedded worker starts with the lifespan, when configured."""
    settings = settings or get_settings()
    database = database or Database.from_settings(settings)
    run_worker = settings.embedded_worker if embedded_worker is None else embedded_worker
    cache = ModelCache(settings.model_cache_size)
    metrics = Metrics(database, cache)
    shutdown = Shutdown(settings.shutdown_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if run_worker:
            worker = Worker(database, settings, metrics=metrics)
            shutdown.on_begin(worker.request_stop)  # stop claiming at once
            worker.start_in_thread()
            app.state.worker = worker
        try:
            yield
        finally:
            shutdown.begin()  # streams end; the running job is handed back
            if worker is not None:
                worker.stop(timeout=shutdown.remaining())
            app.state.resolver.close()

    app = FastAPI(
        title="gmm-service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.model_cache = cache
    app.state.resolver = VersionResolver(database, cache)
    app.state.key_ring = KeyRing.parse(settings.api_keys)
    app.state.metrics = metrics
    app.state.worker = None
    app.state.shutdown = shutdown
    install_problem_handlers(app)
    # The inference routes first: the router tries routes in order, and they are the hot path.
    for router in (inference.router, datasets.router, models.router, jobs.router, health.router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(  # outermost: sees every answer
        RequestObserver, metrics=metrics, record_metrics=settings.metrics_enabled
    )
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """Describe every error as problem+json in the OpenAPI document.

    FastAPI documents request validation errors with its own schema; ours are
    problem+json, so the generated document is rewritten to say so.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        # Referenced by request bodies the service reads itself (see bodies.py).
        for model in (
            Problem,
            DatasetCreate,
            FitRequest,
            PredictRequest,
            ScoreRequest,
            AnomalyRequest,
        ):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components.update(components[model.__name__].pop("$defs", {}))
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"] = {
                        "description": "The request is invalid; `errors` names each field at fault.",
                        "content": problem,
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
