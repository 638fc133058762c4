"""Every error as RFC 9457 problem+json, including FastAPI's and Starlette's own."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..db.faults import is_transient
from ..errors import FieldError, Invalid, ServiceError
from ..gmm import GMMError
from .responses import ProblemResponse

__all__ = [
    "allowed_methods",
    "DATABASE_ERRORS",
    "database_unavailable",
    "field_errors",
    "install_problem_handlers",
    "on_database_error",
    "problem_for",
    "problem_response",
    "problems",
]

log = logging.getLogger("service.api")


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    errors: Iterable[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    errors = [e.as_dict() for e in errors]
    if errors:
        body["errors"] = errors
    return ProblemResponse(body, status_code=status, headers=headers)


def _pointer(location: Sequence[Any]) -> str:
    parts = list(location)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return "#/" + "/".join(str(p) for p in parts)


def field_errors(errors: Iterable[dict[str, Any]]) -> list[FieldError]:
    """Pydantic's error list as field errors with JSON pointers.

    A body that is not JSON at all is a problem of the whole body (``#/``),
    whichever parser found it (FastAPI puts the character offset in ``loc``).
    """
    return [
        FieldError("#/", _not_json(e))
        if e.get("type") == "json_invalid"
        else FieldError(_pointer(e.get("loc", ())), e.get("msg", "is invalid"))
        for e in errors
    ]


def _not_json(error: dict[str, Any]) -> str:
    reason = (error.get("ctx") or {}).get("error") or error.get("msg", "")
    return f"the body is not well-formed JSON ({reason})"


def invalid_from(exc: ValidationError) -> Invalid:
    problems = field_errors(exc.errors(include_url=False, include_input=False))
    return Invalid(_summary(problems), problems)


def _summary(problems: list[FieldError]) -> str:
    if not problems:
        return "the request is invalid"
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{first.pointer}: {first.detail}{more}"


def problem_for(exc: ServiceError | GMMError) -> ProblemResponse:
    """The problem+json answer of an error of the service or of the EM core."""
    if isinstance(exc, GMMError):
        return problem_response(
            422, str(exc), title="Unprocessable Content", type_=f"/problems/{exc.kind}"
        )
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(
        exc.status, exc.detail, title=exc.title, type_=exc.type, errors=exc.errors, headers=headers
    )


async def _on_service_error(request: Request, exc: ServiceError) -> ProblemResponse:
    return problem_for(exc)


async def _on_validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
    problems = field_errors(exc.errors())
    return problem_response(
        422,
        _summary(problems),
        title="Unprocessable Content",
        type_="/problems/validation",
        errors=problems,
    )


async def _on_gmm_error(request: Request, exc: GMMError) -> ProblemResponse:
    return problem_for(exc)


async def _on_http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = getattr(exc, "headers", None)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI could not read a body it parses itself (bytes that are not UTF-8
        # JSON). One rule for every route: a malformed body is a 422 of the body.
        return problem_response(
            422,
            "#/: the body is not well-formed JSON (not UTF-8 text)",
            title="Unprocessable Content",
            type_="/problems/validation",
            errors=[FieldError("#/", "the body is not well-formed JSON (not UTF-8 text)")],
        )
    if exc.status_code == 413:  # the same body as BodySizeLimit's own answer
        return problem_response(413, detail, title="Content Too Large", type_="/problems/too-large")
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        allowed = allowed_methods(request, (headers or {}).get("Allow", ""))
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
    return problem_response(exc.status_code, detail, headers=headers)


def allowed_methods(request: Request, answered: str = "") -> list[str]:
    """Every method the path has: those the document lists for it, and ``answered``'s.

    Starlette's 405 names the methods of the one route whose path matched; a
    path can have several routes (GET in one router, POST in another).
    """
    from .document import documented_path  # the document is built from the app

    methods = {m.strip() for m in answered.split(",") if m.strip()}
    documented = documented_path(request.app, request.url.path)
    if documented is not None:
        methods |= set(documented.query)
    order = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    return sorted(methods, key=lambda m: (order.index(m) if m in order else len(order), m))


def database_unavailable(retry_after_seconds: int) -> ProblemResponse:
    """The 503 answered while the database is away, locked or out of connections."""
    return problem_response(
        503,
        "the database is unavailable or busy; retry after the time in Retry-After",
        title="Service Unavailable",
        type_="/problems/database-unavailable",
        headers={"Retry-After": str(retry_after_seconds)},
    )


async def on_database_error(request: Request, exc: Exception) -> ProblemResponse:
    """503 with ``Retry-After`` for a transient database error (see service.db.faults).

    Handled here (not by the catch-all) so that the answer is an ordinary one:
    the server keeps the client's connection open for its retry.
    """
    if not is_transient(exc):
        return await _on_unexpected(request, exc)
    log.warning(
        "database unavailable",
        extra={"path": request.url.path, "error": f"{exc.__class__.__name__}"},
    )
    return database_unavailable(request.app.state.settings.db_retry_after_seconds)


def _database_errors() -> tuple[type[Exception], ...]:
    """SQLAlchemy's errors, and raw DBAPI ones (service.serving reads on raw connections)."""
    errors: list[type[Exception]] = [sa_exc.DBAPIError, sa_exc.TimeoutError, sqlite3.Error]
    try:
        import psycopg

        errors.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(errors)


DATABASE_ERRORS = _database_errors()


async def _on_unexpected(request: Request, exc: Exception) -> ProblemResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(500, "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(GMMError, _on_gmm_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)


_DESCRIPTIONS = {
    401: "A valid `Authorization: Bearer <key>` is needed (when API keys are on).",
    404: "Unknown id.",
    409: "The resource is not in a state that allows this.",
    412: "The If-Match precondition failed.",
    413: "The request body is too large.",
    415: "Unsupported content type.",
    422: "The request is invalid; `errors` names each field at fault.",
    503: "The database is unavailable or busy; retry after `Retry-After` seconds.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for problem+json answers."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in statuses
    }
