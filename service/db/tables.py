"""The tables: datasets, models and jobs.

Matrices and fitted parameters are stored as binary ``.npy``/``.npz`` blobs
(an exact float64 round trip), never as JSON text.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "Base",
    "DatasetRow",
    "DatasetStatus",
    "IdempotencyRow",
    "JobRow",
    "JobStatus",
    "ModelRow",
    "ModelStatus",
    "ModelVersionRow",
    "VersionSource",
    "PUBLIC_TENANT",
    "new_id",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class ModelStatus(enum.StrEnum):
    new = "new"
    fitting = "fitting"
    ready = "ready"
    failed = "failed"


class VersionSource(enum.StrEnum):
    fit = "fit"
    select = "select"
    import_ = "import"
    update = "update"


class DatasetStatus(enum.StrEnum):
    importing = "importing"
    ready = "ready"
    failed = "failed"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)


def _enum_values(enum_class: type[enum.Enum]) -> list[str]:
    return [member.value for member in enum_class]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


PUBLIC_TENANT = "public"


def _tenant_column() -> Mapped[str]:
    """The tenant that owns a row; ``public`` when API keys are off."""
    return mapped_column(
        String(64), default=PUBLIC_TENANT, server_default=PUBLIC_TENANT, index=True
    )


class DatasetRow(Base):
    """A dataset's metadata; its matrix lives in the blob store as row chunks.

    While an import runs (``status`` importing) the shape, hash and chunks are
    0, empty and null; they are set, with ``ready``, in the import's last commit.
    """

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    name: Mapped[str | None] = mapped_column(String(200))
    n_samples: Mapped[int] = mapped_column(BigInteger)
    n_features: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[DatasetStatus] = mapped_column(
        Enum(DatasetStatus, native_enum=False, length=16),
        default=DatasetStatus.ready,
        server_default=DatasetStatus.ready.value,
    )
    # Rows of each stored chunk, in order (the blob store names them by index).
    chunks: Mapped[list | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    name: Mapped[str | None] = mapped_column(String(200))
    n_components: Mapped[int] = mapped_column(Integer)
    covariance_type: Mapped[str] = mapped_column(String(16))
    tol: Mapped[float] = mapped_column(Float)
    reg_covar: Mapped[float] = mapped_column(Float)
    max_iter: Mapped[int] = mapped_column(Integer)
    n_init: Mapped[int] = mapped_column(Integer)
    init_params: Mapped[str] = mapped_column(String(32))
    random_state: Mapped[int | None] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(16))
    contamination: Mapped[float] = mapped_column(Float)
    status: Mapped[ModelStatus] = mapped_column(
        Enum(ModelStatus, native_enum=False, length=16), default=ModelStatus.new
    )
    # The newest version's number (0 before the first); numbers are never reused.
    version: Mapped[int] = mapped_column(Integer, default=0)
    # The version inference uses unless a request names another; null before the first.
    active_version: Mapped[int | None] = mapped_column(Integer)
    # The active version's, copied here so a model reads in one row.
    n_features: Mapped[int | None] = mapped_column(Integer)
    fit_summary: Mapped[dict | None] = mapped_column(JSON)
    anomaly_threshold: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ModelVersionRow(Base):
    """One immutable fitted state of a model: made by a fit, a selection or an import."""

    __tablename__ = "model_versions"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[VersionSource] = mapped_column(
        Enum(VersionSource, native_enum=False, length=16, values_callable=_enum_values)
    )
    config: Mapped[dict] = mapped_column(JSON)
    n_features: Mapped[int] = mapped_column(Integer)
    fit_summary: Mapped[dict | None] = mapped_column(JSON)
    anomaly_threshold: Mapped[float | None] = mapped_column(Float)
    dataset_id: Mapped[str | None] = mapped_column(String(40))
    dataset_sha256: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(40))
    parameters: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # The training points' anomaly scores, for p-values (npz); null when not kept.
    training_scores: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # At most one queued-or-running fit per model: a second is refused (409).
        Index(
            "uq_jobs_active_model",
            "model_id",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = _tenant_column()
    # Null for a job that makes no model version (an import).
    model_id: Mapped[str | None] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16), default="fit")
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16), default=JobStatus.queued
    )
    progress: Mapped[dict] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    lower_bound_history: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    error: Mapped[dict | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    warm_start: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether the version the job makes becomes the active one.
    activate: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # What a job of another kind than a plain fit needs (e.g. a selection's candidates).
    options: Mapped[dict | None] = mapped_column(JSON)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(80))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    sample_weight: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


def new_id(prefix: str) -> str:
    """An opaque id: a type prefix and 20 random hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class IdempotencyRow(Base):
    """The first answer to a request that carried an ``Idempotency-Key``."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict] = mapped_column(JSON)
    headers: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
