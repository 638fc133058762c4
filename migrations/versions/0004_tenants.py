"""Every dataset, model and job belongs to a tenant (``public`` when API keys are off).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("datasets", "models", "jobs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("tenant", sa.String(64), nullable=False, server_default="public")
            )
            batch.create_index(op.f(f"ix_{table}_tenant"), ["tenant"])


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(op.f(f"ix_{table}_tenant"))
            batch.drop_column("tenant")
