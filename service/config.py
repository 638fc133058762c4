"""The one settings object: every knob of the service, read from ``GMM_*`` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Configuration of the API and the worker.

    Each field is read from the environment variable ``GMM_<FIELD NAME>``.
    """

    model_config = SettingsConfigDict(env_prefix="GMM_", extra="ignore")

    # Storage
    data_dir: Path = Field(Path("data"), description="Where the default SQLite database lives.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in data_dir."
    )

    storage_url: str | None = Field(
        None,
        description="Where dataset matrices live, as row chunks: a folder or s3://bucket/prefix; "
        "default: datasets/ beside the SQLite file, else under data_dir.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible server (MinIO...) for s3:// URLs."
    )
    chunk_bytes: int = Field(
        64 * 2**20, ge=1024, description="Size of one stored row chunk of a dataset."
    )
    import_roots: str = Field(
        "",
        description="Comma-separated folders that POST /v1/datasets/import may read file:// "
        "sources from (none by default); s3:// sources are always allowed.",
    )
    max_dataset_bytes: int = Field(
        64 * 2**30,
        gt=0,
        description="Largest CSV or .npy body streamed to POST /v1/datasets (413 past it).",
    )

    # Database faults and limits
    db_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Wait for a new database connection (PostgreSQL connect_timeout)."
    )
    db_statement_timeout_seconds: float = Field(
        30.0, ge=0, description="Longest statement, on PostgreSQL and SQLite (0: no limit)."
    )
    db_lock_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Wait for a row or table lock (PostgreSQL lock_timeout, SQLite busy timeout).",
    )
    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, description="Wait for a free connection in the pool."
    )
    db_retry_after_seconds: int = Field(
        2, ge=1, description="Retry-After of a 503 answered while the database is unavailable."
    )

    # Serving
    host: str = Field("127.0.0.1", description="Address `gmm-service serve` binds.")
    port: int = Field(8000, description="Port `gmm-service serve` binds.")
    embedded_worker: bool = Field(True, description="Run a fit worker inside the API process.")
    web_concurrency: int = Field(
        1, ge=1, description="API processes `gmm-service serve` runs (one embedded worker in all)."
    )
    shutdown_seconds: float = Field(
        8.0,
        gt=0,
        description="On SIGTERM: time to end streams, hand the running job back and exit.",
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a client gets to send a request's headers."
    )
    http_body_timeout_seconds: float = Field(
        60.0, gt=0, description="Longest wait for the next chunk of a request body."
    )
    log_level: str = Field("info", description="Log level of the service's loggers.")
    log_json: bool | None = Field(
        None, description="JSON log lines; default: JSON unless stderr is a terminal."
    )
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    metrics_public: bool = Field(
        True, description="With API keys on, /metrics stays open (false: it needs a key too)."
    )
    api_keys: str | None = Field(
        None,
        description="Comma-separated tenant:key or tenant:sha256:<hex>; unset, no key is needed.",
    )

    # Worker
    worker_poll_seconds: float = Field(0.2, gt=0, description="Idle wait between claims.")
    lease_seconds: float = Field(30.0, gt=0, description="A job's lease; renewed while it runs.")
    max_attempts: int = Field(3, ge=1, description="Runs of one job before it fails for good.")
    worker_heartbeat_file: Path | None = Field(
        None,
        description="File a worker touches while it lives (each loop and lease renewal); "
        "`gmm-service worker --check` reads its age. Unset: no file.",
    )
    progress_interval_seconds: float = Field(
        0.25, ge=0, description="Least time between progress writes of a running fit."
    )
    idempotency_ttl_hours: float = Field(
        24.0, gt=0, description="How long an Idempotency-Key's first answer is kept."
    )
    job_timeout_seconds: float = Field(
        3600.0, gt=0, description="Wall-clock limit of one fit attempt."
    )
    in_memory_max_bytes: int = Field(
        2 * 2**30,
        ge=0,
        description="Fit data bigger than this (float64 bytes) out-of-core, streaming row "
        "chunks (on Dask when dask_scheduler is set); 0: every fit.",
    )
    dask_scheduler: str | None = Field(
        None,
        description="Dask scheduler (tcp://host:8786) that runs the fits bigger than "
        "in_memory_max_bytes; unset: they run out-of-core in the worker.",
    )
    keep_versions: int = Field(
        20,
        ge=1,
        description="Versions kept per model; workers forget older ones (never the active one).",
    )

    # Limits on requests
    max_body_bytes: int = Field(64 * 2**20, gt=0, description="Largest request body (413 past it).")
    max_rows: int = Field(1_000_000, ge=1, description="Most rows in one data matrix.")
    max_features: int = Field(1024, ge=1, description="Most columns in one data matrix.")
    max_components: int = Field(256, ge=1, description="Largest n_components.")
    max_iter_limit: int = Field(10_000, ge=1, description="Largest max_iter.")
    max_n_init: int = Field(50, ge=1, description="Largest n_init.")
    max_candidates: int = Field(
        64, ge=1, description="Most (n_components, covariance_type) candidates in one selection."
    )
    max_sample_size: int = Field(100_000, ge=1, description="Most points one sample call draws.")
    model_cache_size: int = Field(64, ge=1, description="Fitted models kept decoded in memory.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gmm.db').as_posix()}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        from .blobstore import default_storage_url

        return default_storage_url(self.resolved_database_url, self.data_dir)

    @property
    def import_root_paths(self) -> list[Path]:
        return [Path(root).resolve() for root in self.import_roots.split(",") if root.strip()]


@lru_cache
def get_settings() -> Settings:
    return Settings()
