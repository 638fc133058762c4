"""Dependencies, as ``Annotated`` aliases so that route signatures read like sentences."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request

from ..config import Settings
from ..db import Database
from ..errors import Unauthorized
from ..pagination import CURSOR_MAX_LENGTH, CURSOR_PATTERN
from .schemas import MAX_VERSION

__all__ = [
    "CursorQuery",
    "DatabaseDep",
    "IdempotencyKeyHeader",
    "LimitQuery",
    "SettingsDep",
    "TenantDep",
    "VersionPath",
    "VersionQuery",
    "authenticate",
    "tenant_of",
]


# Dependencies are ``async`` although they do not wait: FastAPI runs a plain
# ``def`` dependency in the thread pool, a hop that costs more than the work.


async def _database(request: Request) -> Database:
    return request.app.state.database


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


def tenant_of(request: Request, authorization: str | None) -> str:
    """The tenant of the request's API key; 401 when keys are on and it has none."""
    tenant = request.app.state.key_ring.tenant_for(authorization)
    if tenant is None:
        raise Unauthorized("send a valid API key as Authorization: Bearer <key>")
    return tenant


async def authenticate(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    return tenant_of(request, authorization)


DatabaseDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
TenantDep = Annotated[str, Depends(authenticate)]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="next_cursor of the previous page: a position in the list "
        "(`<key>` or `<key>.<id>`); the page holds what follows it, empty past the end.",
    ),
]
VersionQuery = Annotated[
    int | None,
    Query(
        ge=1, le=MAX_VERSION, description="Use this version of the model instead of its active one."
    ),
]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="A version number.")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key and body returns the first answer "
        "and creates nothing new, while what it created exists (409 once it is deleted); "
        "the same key with another body is 422.",
        json_schema_extra={"x-rules": ["an Idempotency-Key is not reused with another request"]},
    ),
]
