"""Models keep a history: every fitted state is an immutable row of ``model_versions``.

Each fitted model's parameters move, without loss, into version row number
``models.version`` (source ``fit``), which becomes its ``active_version``; the
blob column on ``models`` goes. Jobs gain ``activate`` (does the version they
make serve at once) and ``options`` (what a non-fit job needs).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CONFIG_COLUMNS = (
    "n_components",
    "covariance_type",
    "tol",
    "reg_covar",
    "max_iter",
    "n_init",
    "init_params",
    "random_state",
    "dtype",
    "contamination",
)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("model_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("n_features", sa.Integer(), nullable=False),
        sa.Column("fit_summary", sa.JSON(), nullable=True),
        sa.Column("anomaly_threshold", sa.Float(), nullable=True),
        sa.Column("dataset_id", sa.String(40), nullable=True),
        sa.Column("dataset_sha256", sa.String(64), nullable=True),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("parameters", sa.LargeBinary(), nullable=False),
        sa.Column("training_scores", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_versions_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_model_versions")),
    )
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("active_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("activate", sa.Boolean(), nullable=False, server_default=sa.text("true"))
        )
        batch.add_column(sa.Column("options", sa.JSON(), nullable=True))

    _move_parameters_into_versions()

    with op.batch_alter_table("models") as batch:
        batch.drop_column("parameters")


def _move_parameters_into_versions() -> None:
    bind = op.get_bind()
    models = sa.table(
        "models",
        sa.column("id", sa.String),
        sa.column("version", sa.Integer),
        sa.column("active_version", sa.Integer),
        sa.column("n_features", sa.Integer),
        sa.column("fit_summary", sa.JSON),
        sa.column("anomaly_threshold", sa.Float),
        sa.column("parameters", sa.LargeBinary),
        sa.column("updated_at", UTCDateTime),
        *(sa.column(name) for name in CONFIG_COLUMNS),
    )
    versions = sa.table(
        "model_versions",
        sa.column("model_id", sa.String),
        sa.column("version", sa.Integer),
        sa.column("source", sa.String),
        sa.column("config", sa.JSON),
        sa.column("n_features", sa.Integer),
        sa.column("fit_summary", sa.JSON),
        sa.column("anomaly_threshold", sa.Float),
        sa.column("dataset_id", sa.String),
        sa.column("dataset_sha256", sa.String),
        sa.column("job_id", sa.String),
        sa.column("parameters", sa.LargeBinary),
        sa.column("created_at", UTCDateTime),
    )
    datasets = sa.table("datasets", sa.column("id", sa.String), sa.column("sha256", sa.String))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String),
        sa.column("model_id", sa.String),
        sa.column("status", sa.String),
        sa.column("finished_at", UTCDateTime),
    )
    fitted = bind.execute(
        sa.select(models).where(models.c.version > 0, models.c.parameters.is_not(None))
    ).all()
    for model in fitted:
        summary = model.fit_summary or {}
        dataset_id = summary.get("dataset_id")
        sha256 = None
        if dataset_id is not None:
            sha256 = bind.scalar(sa.select(datasets.c.sha256).where(datasets.c.id == dataset_id))
        job_id = bind.scalar(
            sa.select(jobs.c.id)
            .where(jobs.c.model_id == model.id, jobs.c.status == "succeeded")
            .order_by(jobs.c.finished_at.desc())
            .limit(1)
        )
        bind.execute(
            versions.insert().values(
                model_id=model.id,
                version=model.version,
                source="fit",
                config={name: getattr(model, name) for name in CONFIG_COLUMNS},
                n_features=model.n_features,
                fit_summary=model.fit_summary,
                anomaly_threshold=model.anomaly_threshold,
                dataset_id=dataset_id,
                dataset_sha256=sha256,
                job_id=job_id,
                parameters=model.parameters,
                created_at=model.updated_at,
            )
        )
        bind.execute(
            models.update().where(models.c.id == model.id).values(active_version=model.version)
        )


def downgrade() -> None:
    """Each model keeps only its active version's parameters (the older schema had no more)."""
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("parameters", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE models SET parameters = (SELECT v.parameters FROM model_versions v "
            "WHERE v.model_id = models.id AND v.version = models.active_version)"
        )
    )
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("options")
        batch.drop_column("activate")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("active_version")
    op.drop_table("model_versions")
