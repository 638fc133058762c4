"""/v1/models/{id}/...: what a fitted model answers. The service's hot path.

Every route resolves the version it serves with one indexed read (see
:mod:`service.serving`) and takes its parameters, with everything derived from
them, from memory. The matrix-carrying routes (predict, score, anomalies) are
``async`` and do no ORM work: a body up to ``INLINE_BODY_BYTES`` is parsed,
scored and encoded on the event loop (a thread hop costs more than the work);
a larger one goes to a worker thread so that it never blocks the loop, and
big bodies take turns there (``big_bodies``, one per two cores): each one's
scoring already spreads its chunks over the cores, and sixteen of them at once
only fight over the GIL and the caches (measured: about 15% fewer requests per
second for 10,000 rows, as JSON or npy, than one at a time).

Bodies are JSON (matrices parsed by simdjson straight into float64, with
Pydantic's full validation as the fallback that names every bad field) or
``application/x-npy`` (a 2-D array; the other fields as query parameters).
Answers are JSON unless ``Accept`` asks for ``application/x-npy`` (the route's
main array) or ``application/x-npz`` (every array of the answer).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ... import inference, versions
from ...cache import ServedVersion
from ...config import Settings
from ...db.tables import ModelVersionRow
from ...errors import FieldError, Invalid, NotFound, ServiceError
from ...matrices import fast_json_matrix, matrix_from_npy, matrix_from_rows
from ..bodies import NPY_BODY, UnsupportedMediaType, content_type_of, is_json, parse_json
from ..deps import DatabaseDep, TenantDep, VersionQuery, tenant_of
from ..problems import field_errors, problems
from ..responses import NumpyJSONResponse, numpy_json
from ..schemas import (
    MAX_VERSION,
    AnomalyRequest,
    AnomalyResponse,
    ConditionRequest,
    ConditionResponse,
    ImputeResponse,
    MonitoringRead,
    ParametersRead,
    PredictRequest,
    PredictResponse,
    SampleRequest,
    SampleResponse,
    ScoreRequest,
    ScoreResponse,
    SklearnParametersRead,
    VersionNumber,
)

__all__ = ["INLINE_BODY_BYTES", "MATRIX_ROUTES", "router"]

# The routes service.api.hot dispatches without the router: they read their own
# path, query, key and body.
MATRIX_ROUTES = ("predict", "score", "anomalies", "condition", "impute")

router = APIRouter(prefix="/v1/models", tags=["inference"])

# Bodies up to this size are handled on the event loop; larger ones in a thread.
# Measured (python bench/bench_serve.py --cutover; 16 features, K=8): a thread
# hop costs ~55 us; parsing, scoring and encoding 64 KiB (~210 rows) ~0.2 ms, so
# the loop is never held longer than that, and small bodies skip the hop.
INLINE_BODY_BYTES = 64 * 1024

NPY = "application/x-npy"
NPZ = "application/x-npz"
NpyOption = "Only with an application/x-npy body (a JSON body carries it itself)."
_ACCEPTED = {
    "application/json": "json",
    "application/*": "json",
    "*/*": "json",
    NPY: "npy",
    NPZ: "npz",
}


class NotAcceptable(ServiceError):
    def __init__(self, accept: str) -> None:
        super().__init__(
            f"cannot answer as {accept!r}; ask for application/json, {NPY} or {NPZ}",
            406,
            "Not Acceptable",
            "/problems/not-acceptable",
        )


def answer_format(request: Request) -> str:
    """json, npy or npz: the first media range of ``Accept`` this route can produce."""
    accept = request.headers.get("accept")
    if not accept:
        return "json"
    for media_range in accept.split(","):
        kind = _ACCEPTED.get(media_range.split(";")[0].strip().lower())
        if kind is not None:
            return kind
    raise NotAcceptable(accept)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _encode(answer: dict[str, Any], kind: str, main: str | None) -> Response:
    if kind == "json":
        return Response(numpy_json(answer), media_type="application/json")
    if kind == "npy":
        others = [name for name, value in answer.items() if name != main and np.ndim(value)]
        if main is None or others:
            raise NotAcceptable(f"{NPY} (this answer has several arrays: ask for {NPZ})")
        return Response(_npy_bytes(answer[main]), media_type=NPY)
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in answer.items()})
    return Response(buffer.getvalue(), media_type=NPZ)


def _options(request_model: type[BaseModel], fields: dict[str, Any]) -> BaseModel:
    """The body's fields other than ``data``, validated by the request model."""
    try:
        return request_model.model_validate({**fields, "data": [[0.0]]})
    except ValidationError as exc:
        problems_found = field_errors(exc.errors(include_url=False, include_input=False))
        raise Invalid("the request's options are invalid", problems_found) from None


@functools.cache
def _defaults(request_model: type[BaseModel]) -> BaseModel:
    """The request's options, all at their defaults (validated once)."""
    return request_model.model_validate({"data": [[0.0]]})


def _parse(
    request_model: type[BaseModel],
    content_type: str,
    body: bytes,
    query: dict[str, Any],
    served: ServedVersion,
    settings: Settings,
) -> tuple[BaseModel, np.ndarray]:
    limits = dict(
        max_rows=settings.max_rows, max_features=settings.max_features, allow_missing=True
    )
    if content_type == NPY:
        matrix = matrix_from_npy(body, n_features=served.n_features, **limits)
        return _options(request_model, query), matrix
    fast = fast_json_matrix(
        body,
        n_features=served.n_features,
        max_rows=settings.max_rows,
        max_features=settings.max_features,
    )
    if fast is not None:
        matrix, fields = fast
        if not fields:  # every option at its default
            return _defaults(request_model), matrix
        try:
            return request_model.model_validate({**fields, "data": [[0.0]]}), matrix
        except ValidationError:
            pass  # the full validation below names the field
    parsed = parse_json(request_model, body)
    matrix = matrix_from_rows(parsed.data, n_features=served.n_features, **limits)
    return parsed, matrix


async def _answer(
    request: Request,
    served: ServedVersion,
    request_model: type[BaseModel],
    query: dict[str, Any],
    compute: Callable[[Any, np.ndarray], dict[str, Any]],
    main: str | None,
) -> Response:
    kind = answer_format(request)
    content_type = content_type_of(request)
    if not (content_type == NPY or is_json(content_type)):
        raise UnsupportedMediaType(content_type, f"application/json or {NPY}")
    body = await request.body()
    settings: Settings = request.app.state.settings

    def work() -> Response:
        options, matrix = _parse(request_model, content_type, body, query, served, settings)
        return _encode(compute(options, matrix), kind, main)

    if len(body) <= INLINE_BODY_BYTES:
        return work()
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.big_bodies)


def _served(request: Request, tenant: str, model_id: str, version: int | None) -> ServedVersion:
    return request.app.state.resolver.resolve(tenant=tenant, model_id=model_id, version=version)


# The matrix routes read their path, query and key themselves: FastAPI's parameter
# machinery costs more per request than scoring a row. Their parameters are
# declared for the OpenAPI document by hand, below.
_QUERY_TYPES: dict[str, TypeAdapter] = {
    "version": TypeAdapter(VersionNumber),
    "return_probabilities": TypeAdapter(bool),
    "threshold": TypeAdapter(Annotated[float, Field(allow_inf_nan=False)]),
    "contamination": TypeAdapter(Annotated[float, Field(gt=0, le=0.5, allow_inf_nan=False)]),
    "explain": TypeAdapter(bool),
}


def _query(request: Request, *names: str) -> dict[str, Any]:
    """The named query parameters that are present, validated as FastAPI would."""
    given = request.query_params
    values: dict[str, Any] = {}
    for name in names:
        raw = given.get(name)
        if raw is None:
            continue
        try:
            values[name] = _QUERY_TYPES[name].validate_python(raw)
        except ValidationError as exc:
            detail = exc.errors(include_url=False)[0]["msg"]
            raise Invalid(f"#/{name}: {detail}", [FieldError(f"#/{name}", detail)]) from None
    return values


def _hot_served(request: Request, query: dict[str, Any]) -> ServedVersion:
    tenant = tenant_of(request, request.headers.get("authorization"))
    return _served(request, tenant, request.path_params["model_id"], query.pop("version", None))


def _hot_parameters(*names: str) -> list[dict[str, Any]]:
    described = {
        "version": (
            {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
            "Use this version of the model instead of its active one.",
        ),
        "return_probabilities": ({"type": "boolean"}, NpyOption),
        "threshold": ({"type": "number"}, NpyOption),
        "contamination": (
            {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
            NpyOption,
        ),
        "explain": ({"type": "boolean"}, NpyOption),
    }
    path = {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return [path] + [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": described[name][0],
            "description": described[name][1],
        }
        for name in names
    ]


def _matrix_openapi(request_model: type[BaseModel], *query: str) -> dict[str, Any]:
    return {
        "parameters": _hot_parameters("version", *query),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{request_model.__name__}"}
                },
                NPY: {"schema": NPY_BODY},
            },
        },
    }


def _binary_answers(main: str | None) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {
        NPZ: {"schema": {"type": "string", "format": "binary", "description": "Every array."}}
    }
    if main is not None:
        content[NPY] = {"schema": {"type": "string", "format": "binary", "description": main}}
    return {200: {"content": content}, **problems(404, 406, 409, 413, 415, 422)}


@router.post(
    "/{model_id}/predict",
    response_model=PredictResponse,
    responses=_binary_answers("labels"),
    openapi_extra=_matrix_openapi(PredictRequest, "return_probabilities"),
    summary="Most probable component of each point",
)
async def predict(request: Request) -> Response:
    query = _query(request, "version", "return_probabilities")
    served = _hot_served(request, query)

    def compute(options: PredictRequest, matrix: np.ndarray) -> dict[str, Any]:
        return inference.predict(served, matrix, return_probabilities=options.return_probabilities)

    return await _answer(request, served, PredictRequest, query, compute, "labels")


@router.post(
    "/{model_id}/score",
    response_model=ScoreResponse,
    responses=_binary_answers("log_likelihood"),
    openapi_extra=_matrix_openapi(ScoreRequest),
    summary="Log-likelihood of each point",
)
async def score(request: Request) -> Response:
    query = _query(request, "version")
    served = _hot_served(request, query)

    def compute(options: ScoreRequest, matrix: np.ndarray) -> dict[str, Any]:
        return inference.score(served, matrix)

    return await _answer(request, served, ScoreRequest, query, compute, "log_likelihood")


@router.post(
    "/{model_id}/anomalies",
    response_model=AnomalyResponse,
    responses=_binary_answers(None),
    openapi_extra=_matrix_openapi(AnomalyRequest, "threshold", "contamination", "explain"),
    summary="Flag points whose negative log-likelihood exceeds the threshold",
)
async def anomalies(request: Request) -> Response:
    query = _query(request, "version", "threshold", "contamination", "explain")
    served = _hot_served(request, query)

    def compute(options: AnomalyRequest, matrix: np.ndarray) -> dict[str, Any]:
        return inference.anomalies(
            served,
            matrix,
            threshold=options.threshold,
            contamination=options.contamination,
            explain=options.explain,
        )

    return await _answer(request, served, AnomalyRequest, query, compute, None)


@router.get(
    "/{model_id}/parameters",
    response_model=ParametersRead | SklearnParametersRead,
    responses=problems(404, 409, 422),
    summary="The fitted parameters (format=sklearn: scikit-learn's fitted attributes)",
)
def get_parameters(
    model_id: str,
    request: Request,
    tenant: TenantDep,
    database: DatabaseDep,
    version: VersionQuery = None,
    format: Annotated[
        Literal["default", "sklearn"],
        Query(description="sklearn: the attributes sklearn.mixture.GaussianMixture needs."),
    ] = "default",
) -> JSONResponse:
    served = _served(request, tenant, model_id, version)
    parameters = served.parameters
    if format == "sklearn":
        with database.session() as session:
            row = session.get(ModelVersionRow, (model_id, served.version))
            if row is None:  # deleted since it was resolved
                raise NotFound(f"model {model_id!r} has no version {served.version}")
            return NumpyJSONResponse(versions.sklearn_export(parameters, row))
    return NumpyJSONResponse(
        {
            "covariance_type": parameters.covariance_type,
            "version": served.version,
            "weights": parameters.weights,
            "means": parameters.means,
            "covariances": parameters.covariances,
        }
    )


@router.post(
    "/{model_id}/sample",
    response_model=SampleResponse,
    responses=problems(404, 409, 422),
    summary="Draw points from the fitted mixture",
)
def sample(
    model_id: str,
    body: SampleRequest,
    request: Request,
    tenant: TenantDep,
    version: VersionQuery = None,
) -> JSONResponse:
    served = _served(request, tenant, model_id, version)
    answer = inference.sample(
        served,
        n_samples=body.n_samples,
        random_state=body.random_state,
        settings=request.app.state.settings,
    )
    return NumpyJSONResponse(answer)


@router.post(
    "/{model_id}/condition",
    response_model=ConditionResponse,
    responses=_binary_answers(None),
    openapi_extra=_matrix_openapi(ConditionRequest),
    summary="The conditional mixture of each row's missing (null) features given the others",
)
async def condition(request: Request) -> Response:
    query = _query(request, "version")
    served = _hot_served(request, query)

    def compute(options: ConditionRequest, matrix: np.ndarray) -> dict[str, Any]:
        return inference.condition(served, matrix)

    return await _answer(request, served, ConditionRequest, query, compute, None)


@router.post(
    "/{model_id}/impute",
    response_model=ImputeResponse,
    responses=_binary_answers(None),
    openapi_extra=_matrix_openapi(ConditionRequest),
    summary="Each null replaced by its conditional mean, with its conditional deviation",
)
async def impute(request: Request) -> Response:
    query = _query(request, "version")
    served = _hot_served(request, query)

    def compute(options: ConditionRequest, matrix: np.ndarray) -> dict[str, Any]:
        return inference.impute(served, matrix)

    return await _answer(request, served, ConditionRequest, query, compute, None)


@router.get(
    "/{model_id}/monitoring",
    response_model=MonitoringRead,
    responses=problems(404, 409, 422),
    summary="Live scores of the active version against its training scores",
)
def monitoring(model_id: str, request: Request, tenant: TenantDep) -> JSONResponse:
    served = _served(request, tenant, model_id, None)
    return NumpyJSONResponse(inference.monitoring(served))
