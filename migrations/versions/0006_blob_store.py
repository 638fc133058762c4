"""Dataset matrices move out of the database into the blob store, as row chunks.

Each dataset's ``.npy`` blob is read (one at a time), written to the blob store
as row chunks (``<store>/<dataset id>/000000.npy`` ...) and replaced by the
list of the chunks' rows; its SHA-256 stays as it was (the hash of the same
float64 bytes). Datasets gain ``status`` (importing | ready | failed; existing
ones are ready); ``n_samples`` and ``size_bytes`` widen to 64 bits; a job's
``model_id`` may be null (an import makes no model version).

The blob store is the one the service is configured with
(``upgrade(engine, blob_store=...)``), else the default folder beside a
SQLite file. Downgrade reads every ready dataset's chunks back into its row
(datasets still importing or failed, and import jobs, are dropped); the chunk
files are left where they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from service.blobstore import BlobStore, default_storage_url
from service.matrices import array_from_blob, array_to_blob

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_datasets = sa.table(
    "datasets",
    sa.column("id", sa.String),
    sa.column("data", sa.LargeBinary),
    sa.column("chunks", sa.JSON),
    sa.column("n_features", sa.Integer),
    sa.column("status", sa.String),
)


def _blob_store() -> BlobStore:
    store = context.config.attributes.get("blob_store")
    if store is not None:
        return store
    url = op.get_bind().engine.url.render_as_string(hide_password=False)
    return BlobStore(default_storage_url(url, Path("data")))


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="ready"))
        batch.add_column(sa.Column("chunks", sa.JSON(), nullable=True))
    _move_blobs_out(_blob_store())
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("data")
        batch.alter_column("n_samples", type_=sa.BigInteger(), existing_nullable=False)
        batch.alter_column("size_bytes", type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("model_id", existing_type=sa.String(40), nullable=True)


def _move_blobs_out(store: BlobStore) -> None:
    bind = op.get_bind()
    ids = bind.execute(sa.select(_datasets.c.id).order_by(_datasets.c.id)).scalars().all()
    for dataset_id in ids:  # one matrix in memory at a time
        blob = bind.execute(
            sa.select(_datasets.c.data).where(_datasets.c.id == dataset_id)
        ).scalar_one()
        written = store.write_matrix(dataset_id, array_from_blob(blob))
        del blob
        bind.execute(
            _datasets.update().where(_datasets.c.id == dataset_id).values(chunks=written.chunk_rows)
        )


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM jobs WHERE model_id IS NULL"))
    bind.execute(sa.text("DELETE FROM datasets WHERE status <> 'ready'"))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("model_id", existing_type=sa.String(40), nullable=False)
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    store = _blob_store()
    rows = bind.execute(
        sa.select(_datasets.c.id, _datasets.c.chunks, _datasets.c.n_features).order_by(
            _datasets.c.id
        )
    ).all()
    for dataset_id, chunks, n_features in rows:
        matrix = store.stored_matrix(dataset_id, chunks or [], n_features).read_all()
        bind.execute(
            _datasets.update()
            .where(_datasets.c.id == dataset_id)
            .values(data=array_to_blob(matrix))
        )
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
        batch.alter_column("n_samples", type_=sa.Integer(), existing_nullable=False)
        batch.alter_column("size_bytes", type_=sa.Integer(), existing_nullable=False)
        batch.drop_column("chunks")
        batch.drop_column("status")
