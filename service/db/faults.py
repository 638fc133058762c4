"""Which database errors are worth waiting out, and waiting them out.

A *transient* error says the database could not do the work just now, not
that the work is wrong: run again later, the same statement can succeed.

- the connection could not be made, or broke (PostgreSQL restarted, the
  backend was terminated, the network dropped): SQLAlchemy's
  ``OperationalError``/``InterfaceError``, or any ``DBAPIError`` that
  invalidated its connection;
- a bound on a wait was reached: no free connection in the pool
  (``sqlalchemy.exc.TimeoutError``), PostgreSQL's ``lock_timeout`` or
  ``statement_timeout`` (``QueryCanceled``, ``LockNotAvailable``), a
  serialization failure or a deadlock (PostgreSQL reports all of these as
  ``OperationalError``);
- SQLite's ``database is locked`` / ``database table is locked`` (another
  writer held the file past the busy timeout) and ``interrupted`` (a statement
  ran past ``GMM_DB_STATEMENT_TIMEOUT_SECONDS``).

Everything else is a real error and is not retried: constraint violations
(``IntegrityError``), bad data (``DataError``), bad SQL or a missing table
(``ProgrammingError``, and SQLite's other ``OperationalError`` messages such
as ``no such table``), and every exception that is not the database's.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

__all__ = ["is_transient", "retry_transient"]

log = logging.getLogger("service.db")

T = TypeVar("T")

# Busy past the busy timeout; "interrupted": past the statement timeout (see session.py).
_SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy", "interrupted")


def _psycopg_transient(error: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)


def is_transient(error: BaseException) -> bool:
    """True for an error that says "not now" rather than "not this" (see the module doc)."""
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no free connection in time
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        original = error.orig
        if isinstance(original, sqlite3.Error):
            return _sqlite_busy(original)
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    if isinstance(error, sqlite3.Error):  # raw DBAPI connections (service.serving)
        return _sqlite_busy(error)
    return _psycopg_transient(error)


def _sqlite_busy(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and any(
        text in str(error).lower() for text in _SQLITE_BUSY
    )


def retry_transient(
    operation: Callable[[], T],
    *,
    what: str,
    give_up: Callable[[], bool] = lambda: False,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Run ``operation`` until it returns, waiting out transient database errors.

    Waits grow from ``first_delay`` to ``max_delay`` (doubling, with jitter).
    A real error is raised at once; a transient one is raised when ``give_up()``
    says so (checked after each failure).
    """
    delay = first_delay
    failures = 0
    while True:
        try:
            result = operation()
        except Exception as error:
            if not is_transient(error) or give_up():
                raise
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "database unavailable; retrying",
                    extra={"operation": what, "failures": failures, "error": _brief(error)},
                )
            sleep(delay * random.uniform(0.5, 1.0))
            delay = min(max_delay, delay * 2)
            continue
        if failures:
            log.info("database back", extra={"operation": what, "failures": failures})
        return result


def _brief(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0] if text else ''}"[:300]
