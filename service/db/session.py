"""Engines and sessions for SQLite and PostgreSQL.

Every wait on the database is bounded (see :class:`Timeouts`): opening a
connection, taking a lock, running one statement, and getting a connection
from the pool. A database that hangs then fails fast with an error that
:func:`service.db.faults.is_transient` recognises, instead of hanging requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from ..blobstore import BlobStore
    from ..config import Settings

__all__ = ["Database", "Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Bounds on waits for the database, in seconds (the settings ``GMM_DB_*``)."""

    connect: float = 5.0
    statement: float = 30.0  # 0: no limit
    lock: float = 5.0
    pool: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        return cls(
            connect=settings.db_connect_timeout_seconds,
            statement=settings.db_statement_timeout_seconds,
            lock=settings.db_lock_timeout_seconds,
            pool=settings.db_pool_timeout_seconds,
        )


def _sqlite_pragmas(dbapi_connection, record, *, busy_ms: int, statement_seconds: float) -> None:
    """WAL and a busy timeout, so the API and the embedded worker share the file;
    and a statement timeout (SQLite has none of its own: a progress handler
    interrupts a statement that runs past the deadline set when it started)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    if statement_seconds > 0:
        deadline = record.info.setdefault("statement_deadline", [None])

        def past_deadline() -> int:
            limit = deadline[0]
            return int(limit is not None and time.monotonic() > limit)

        dbapi_connection.set_progress_handler(past_deadline, 100_000)


def _start_statement_clock(seconds: float):
    def before(connection, cursor, statement, parameters, context, executemany) -> None:
        deadline = connection.connection.info.get("statement_deadline")
        if deadline is not None:
            deadline[0] = time.monotonic() + seconds

    return before


def _stop_statement_clock(connection, cursor, statement, parameters, context, executemany) -> None:
    deadline = connection.connection.info.get("statement_deadline")
    if deadline is not None:
        deadline[0] = None


def make_engine(url: str, timeouts: Timeouts | None = None) -> Engine:
    timeouts = timeouts or Timeouts()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        in_memory = not parsed.database or parsed.database == ":memory:"
        pool = {} if in_memory else {"pool_timeout": timeouts.pool}  # one shared connection
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeouts.lock}, **pool
        )
        busy_ms = max(1, round(timeouts.lock * 1000))
        event.listen(
            engine,
            "connect",
            partial(_sqlite_pragmas, busy_ms=busy_ms, statement_seconds=timeouts.statement),
        )
        if timeouts.statement > 0:
            event.listen(
                engine, "before_cursor_execute", _start_statement_clock(timeouts.statement)
            )
            event.listen(engine, "after_cursor_execute", _stop_statement_clock)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    options = f"-c lock_timeout={max(1, round(timeouts.lock * 1000))}"
    if timeouts.statement > 0:
        options += f" -c statement_timeout={max(1, round(timeouts.statement * 1000))}"
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=timeouts.pool,
        # libpq counts whole seconds and takes at least 2.
        connect_args={"connect_timeout": max(2, round(timeouts.connect)), "options": options},
    )


class Database:
    """One engine, its session factory, and the blob store that holds dataset matrices.

    Sessions carry the blob store as ``session.info["blob_store"]``; without one
    given, it is the default folder (``datasets/`` beside a SQLite file).
    """

    def __init__(
        self, url: str, timeouts: Timeouts | None = None, blob_store: BlobStore | None = None
    ) -> None:
        from ..blobstore import BlobStore, default_storage_url

        self.url = url
        self.timeouts = timeouts or Timeouts()
        self.engine = make_engine(url, self.timeouts)
        self.blob_store = blob_store or BlobStore(default_storage_url(url, Path("data")))
        self.sessionmaker = sessionmaker(
            self.engine, expire_on_commit=False, info={"blob_store": self.blob_store}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        from ..blobstore import BlobStore

        return cls(
            settings.resolved_database_url,
            Timeouts.from_settings(settings),
            BlobStore.from_settings(settings),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        session = self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
