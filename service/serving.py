"""Which version a request is served by: one indexed read, then the in-memory cache.

Inference requests (predict, score, anomalies, ...) are the service's main
loop. Each one reads, on a raw database connection with no ORM, one row: the
model's tenant, its newest and active version numbers, and whether the version
asked for still exists (a primary-key lookup on ``models`` joined to one on
``model_versions``). Versions are immutable, so everything derived from a
version's parameters (precision Cholesky factors, log-determinants, the
scoring kernel's coefficients) is built once and kept in the
:class:`~service.cache.ModelCache` under (model id, version number).

This gives read-your-writes across API replicas and workers: a refit, a
rollback, a version or model deleted, or another tenant's id, is seen by the
very next request after it committed, whichever process committed it. The
read costs one round trip (tens of microseconds on SQLite, about a hundred on
PostgreSQL over loopback) and runs on the calling thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .cache import ModelCache, ServedVersion
from .db import Database
from .errors import Conflict, NotFound
from .versions import load_served

__all__ = ["VersionResolver"]

log = logging.getLogger("service.serving")

_RESOLVE = """
SELECT m.tenant, m.version, COALESCE({version}, m.active_version),
       EXISTS (SELECT 1 FROM model_versions v
               WHERE v.model_id = m.id AND v.version = COALESCE({version}, m.active_version))
FROM models m WHERE m.id = {model_id}
"""


class VersionResolver:
    """Resolves (tenant, model id, version or None) to a ready :class:`ServedVersion`.

    Holds one raw DBAPI connection per thread, in autocommit (each read sees
    every commit made before it); a broken connection is replaced and the read
    retried once.
    """

    def __init__(self, database: Database, cache: ModelCache) -> None:
        self.database = database
        self.cache = cache
        self._local = threading.local()
        style = "?" if database.is_sqlite else "%s"
        self._sql = _RESOLVE.format(version=f"CAST({style} AS INTEGER)", model_id=style)

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.database.engine.raw_connection()
            if not self.database.is_sqlite:
                connection.driver_connection.autocommit = True
            self._local.connection = connection
        return connection

    def _discard(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.invalidate()
            except Exception:  # already broken: nothing to give back
                log.debug("discarding a broken connection failed", exc_info=True)

    def _read(self, model_id: str, version: int | None) -> tuple | None:
        for attempt in (1, 2):
            try:
                cursor = self._connection().cursor()
                try:
                    cursor.execute(self._sql, (version, version, model_id))
                    return cursor.fetchone()
                finally:
                    cursor.close()
            except self.database.engine.dialect.loaded_dbapi.Error:
                self._discard()
                if attempt == 2:
                    raise
        return None  # pragma: no cover - the loop returns or raises

    def resolve(self, *, tenant: str, model_id: str, version: int | None) -> ServedVersion:
        """The version to serve; 404 for an unknown model or version, 409 if none is active."""
        found = self._read(model_id, version)
        if found is None or found[0] != tenant:
            raise NotFound(f"model {model_id!r} does not exist")
        _, newest, number, exists = found
        if newest == 0:
            raise Conflict(f"model {model_id!r} is not fitted yet; fit it first")
        if number is None:
            raise Conflict(
                f"model {model_id!r} has no active version; activate one of its staged versions"
            )
        if not exists:
            raise NotFound(f"model {model_id!r} has no version {number}")
        return self.cache.get(model_id, number, lambda: self._load(model_id, number))

    def _load(self, model_id: str, version: int) -> ServedVersion:
        with self.database.session() as session:
            served = load_served(session=session, model_id=model_id, version=version)
        if served is None:  # deleted between the two reads: the next request says 404
            raise NotFound(f"model {model_id!r} has no version {version}")
        return served

    def close(self) -> None:
        self._discard()
