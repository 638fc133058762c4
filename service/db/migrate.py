"""Alembic, driven from code: upgrade to head, downgrade, and where we stand."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

import migrations

if TYPE_CHECKING:
    from ..blobstore import BlobStore

__all__ = ["current_revision", "downgrade", "head_revision", "schema_revision", "upgrade"]


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


# pg_advisory_xact_lock's key: the same number in every process of the service.
_MIGRATION_LOCK_KEY = 0x676D6D2D6D696772  # "gmm-migr"


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on ``<database file>.migrate.lock`` (none for in-memory SQLite)."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    path = Path(database).with_name(Path(database).name + ".migrate.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


@contextmanager
def _migrating(engine: Engine, blob_store: BlobStore | None = None) -> Iterator[Config]:
    """A config bound to one connection, in one transaction, under a lock.

    Replicas started together each run ``upgrade`` at once; the lock makes them
    take turns, and each one reads the schema's revision after it holds the
    lock, so the first migrates and the others find the database at head. On
    PostgreSQL the lock is a transaction-level advisory lock (released by the
    commit or by a dropped connection); on SQLite, an exclusive ``flock`` on a
    file beside the database.

    On SQLite, foreign keys are off while migrations run: a batch migration
    rebuilds a table by copying it and dropping the original, and with foreign
    keys on, that drop would cascade to every row that refers to it. (The
    pragma only takes effect outside a transaction, hence before ``begin``.)
    """
    sqlite = engine.dialect.name == "sqlite"
    with _file_lock(engine) if sqlite else nullcontext(), engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Waiting for another replica's migration is not a slow statement.
                    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                    connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config = _config(engine)
                config.attributes["connection"] = connection
                config.attributes["blob_store"] = blob_store
                yield config
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head", *, blob_store: BlobStore | None = None) -> None:
    """Migrate to ``revision``; ``blob_store`` is where dataset matrices go (0006)."""
    with _migrating(engine, blob_store) as config:
        command.upgrade(config, revision)


def downgrade(
    engine: Engine, revision: str = "base", *, blob_store: BlobStore | None = None
) -> None:
    with _migrating(engine, blob_store) as config:
        command.downgrade(config, revision)


def head_revision(engine: Engine | None = None) -> str | None:
    """The newest revision of the migration scripts (read once per process)."""
    return _head()


@cache
def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_revision(connection: Connection) -> str | None:
    """The database's revision, read quietly (no Alembic context, no log lines):
    for readiness checks, which run every few seconds."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
