"""The FastAPI application factory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from ..auth import KeyRing
from ..cache import ModelCache
from ..config import Settings, get_settings
from ..db import Database
from ..heap import settle
from ..metrics import Metrics
from ..serving import VersionResolver
from ..worker import Worker
from .document import install_document, register_body_schema
from .hot import HotPath
from .limits import BodySizeLimit
from .observe import RequestObserver
from .problems import install_problem_handlers
from .query import UndocumentedQuery
from .routers import datasets, health, inference, jobs, models, ui
from .schemas import (
    AnomalyRequest,
    ConditionRequest,
    DatasetCreate,
    FitRequest,
    PredictRequest,
    ScoreRequest,
    SelectRequest,
    UpdateRequest,
)
from .shutdown import Shutdown

__all__ = ["create_app"]

DESCRIPTION = """Gaussian mixture models as a service: store data, fit mixtures by EM in the
background, then predict clusters, score log-likelihood, flag anomalies and draw samples.
Every error is `application/problem+json` (RFC 9457). A malformed body (not the JSON, CSV
or .npy its Content-Type names) is a 422 of `#/`, like any other invalid input; a 405 lists
every method of the path in `Allow`. Operations list in `x-also-checked` the rules they
enforce beyond JSON Schema, and `x-setting` names the `GMM_*` setting behind a `maximum`."""


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
        settle()  # everything imported and built so far is never scanned again
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
        docs_url=None,  # served from the package by routers/ui.py, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.model_cache = cache
    app.state.resolver = VersionResolver(database, cache)
    # Matrix bodies too big for the event loop take turns in threads (routers.inference).
    app.state.big_bodies = anyio.CapacityLimiter(max(1, (os.cpu_count() or 1) // 2))
    app.state.key_ring = KeyRing.parse(settings.api_keys)
    app.state.metrics = metrics
    app.state.worker = None
    app.state.shutdown = shutdown
    install_problem_handlers(app)
    # The inference routes first: the router tries routes in order, and they are the hot path.
    routers = (
        inference.router,
        datasets.router,
        models.router,
        jobs.router,
        health.router,
        ui.router,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(  # innermost
        HotPath, routes=inference.router.routes, names=inference.MATRIX_ROUTES
    )
    app.add_middleware(UndocumentedQuery)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        streamed_max_bytes=settings.max_dataset_bytes,
        streamed_path="/v1/datasets",
        streamed_types=datasets.STREAMED_TYPES,
    )
    app.add_middleware(  # outermost: sees every answer
        RequestObserver, metrics=metrics, record_metrics=settings.metrics_enabled
    )
    for body in (
        DatasetCreate,
        FitRequest,
        SelectRequest,
        UpdateRequest,
        PredictRequest,
        ScoreRequest,
        AnomalyRequest,
        ConditionRequest,
    ):
        register_body_schema(body)  # request bodies the routes read themselves
    install_document(app, settings)
    return app
