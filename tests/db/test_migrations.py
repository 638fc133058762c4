"""Alembic: the same migrations on SQLite and PostgreSQL, up and down."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.db import Database
from service.db.migrate import current_revision, downgrade, head_revision, upgrade
from service.db.tables import Base


def test_migrations_build_exactly_the_tables_the_code_declares(database):
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_upgrade_from_empty_to_head_and_downgrade_back(database_url):
    database = Database(database_url)
    downgrade(database.engine, "base")
    assert current_revision(database.engine) is None
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    upgrade(database.engine)
    assert current_revision(database.engine) == head_revision(database.engine)
    assert {"datasets", "models", "jobs"} <= set(inspect(database.engine).get_table_names())
    database.dispose()
