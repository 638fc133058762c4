"""``Idempotency-Key``: a retried request gets the first answer and creates nothing new.

The first answer is stored in the same transaction as what the request
created, so either both exist or neither does. It is replayed while what it
created (the resource at its ``Location``) exists; once that is deleted, a
retry is a 409 rather than a 201 pointing at nothing. Two racing requests with one
key: the second's insert of the key fails, its transaction (and what it
created) rolls back, and it replays the first's answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import Database
from .db.tables import DatasetRow, IdempotencyRow, JobRow, ModelRow
from .errors import Conflict, FieldError, Invalid

__all__ = ["Answer", "expire_keys", "fingerprint", "run_once"]


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


def expire_keys(*, session: Session, before: datetime) -> int:
    """Forget the answers stored before ``before``; returns how many."""
    return session.execute(
        delete(IdempotencyRow).where(IdempotencyRow.created_at < before)
    ).rowcount


def fingerprint(*parts: str | bytes) -> str:
    """SHA-256 over the parts of a request that make it the same request."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)  # not concatenated: a large body is not copied
    return digest.hexdigest()


def _replay(session: Session, scope: str, key: str, request_fingerprint: str) -> Answer | None:
    row = session.get(IdempotencyRow, (scope, key))
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        raise Invalid(
            "this Idempotency-Key was used with a different request; use a new key",
            [FieldError("#/Idempotency-Key", "already used with another body")],
        )
    location = (row.headers or {}).get("Location")
    if location is not None and not _exists(session, location):
        raise Conflict(
            f"what this Idempotency-Key created ({location}) has been deleted since; "
            "use a new key to create it again"
        )
    return Answer(row.status_code, row.body, row.headers)


_LOCATIONS = {"/v1/datasets/": DatasetRow, "/v1/models/": ModelRow, "/v1/jobs/": JobRow}


def _exists(session: Session, location: str) -> bool:
    """Whether the resource a stored answer's ``Location`` names is still there."""
    for prefix, table in _LOCATIONS.items():
        rest = location.removeprefix(prefix)
        if rest != location and "/" not in rest:
            return session.get(table, rest) is not None
    return True


def run_once(
    *,
    database: Database,
    scope: str,
    key: str | None,
    request_fingerprint: str,
    run: Callable[[Session], Answer],
) -> Answer:
    """Run ``run`` in a transaction, once per (scope, key); replay its answer after."""
    if key is None:
        with database.session() as session:
            return run(session)
    try:
        with database.session() as session:
            answer = _replay(session, scope, key, request_fingerprint)
            if answer is not None:
                return answer
            answer = run(session)
            session.add(
                IdempotencyRow(
                    scope=scope,
                    key=key,
                    fingerprint=request_fingerprint,
                    status_code=answer.status_code,
                    body=answer.body,
                    headers=answer.headers,
                )
            )
            return answer
    except IntegrityError:
        with database.session() as session:  # lost the race: the winner's answer
            answer = _replay(session, scope, key, request_fingerprint)
        if answer is None:
            raise
        return answer
