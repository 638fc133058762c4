"""Alembic, driven from code: upgrade to head, downgrade, and where we stand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations

__all__ = ["current_revision", "downgrade", "head_revision", "upgrade"]


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


@contextmanager
def _migrating(engine: Engine) -> Iterator[Config]:
    """A config bound to one connection, in one transaction.

    On SQLite, foreign keys are off while migrations run: a batch migration
    rebuilds a table by copying it and dropping the original, and with foreign
    keys on, that drop would cascade to every row that refers to it. (The
    pragma only takes effect outside a transaction, hence before ``begin``.)
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config = _config(engine)
                config.attributes["connection"] = connection
                yield config
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with _migrating(engine) as config:
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with _migrating(engine) as config:
        command.downgrade(config, revision)


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
