"""Databases for the tests: a fresh SQLite file per test, and the real PostgreSQL.

PostgreSQL tests read ``GMM_TEST_POSTGRES_URL``. Unset, they are skipped with a
visible reason; set but unreachable, they fail (CI sets it).

``make test`` runs the suite on two processes (pytest-xdist). Each gets its own
PostgreSQL database, servers on ports of their own and files under its own
``tmp_path``; a test marked ``alone`` runs while the other process runs none.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.api import create_app
from service.blobstore import BlobStore
from service.config import Settings
from service.db import Database
from service.db.migrate import upgrade

POSTGRES_URL = os.environ.get("GMM_TEST_POSTGRES_URL")
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(autouse=True)
def _alone_or_shared(request, tmp_path_factory) -> Iterator[None]:
    """Under pytest-xdist, a test marked ``alone`` runs while no other test runs.

    Such a test times the machine (a page's first load, a redraw of 10,000 points),
    and the other process's tests would take the cores it is timing. A
    readers-writer lock over the session's workers (``flock`` on files in the
    directory they share): every test holds it shared, an ``alone`` test holds it
    exclusively; a turnstile in front keeps a waiting ``alone`` test from being
    overtaken by the next tests of the other process.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    alone = request.node.get_closest_marker("alone") is not None
    shared = tmp_path_factory.getbasetemp().parent  # one per session, every worker's
    with open(shared / "alone.turnstile", "a") as turnstile, open(shared / "alone", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _psycopg(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, for this test run."""
    if not POSTGRES_URL:
        pytest.skip("GMM_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")
    admin = create_engine(_psycopg(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    name = f"gmm_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_psycopg(POSTGRES_URL)).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_server_url: str) -> str:
    database = Database(postgres_server_url)
    upgrade(database.engine)
    database.dispose()
    return postgres_server_url


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated to head once per session (a migration takes ~0.35 s)."""
    path = tmp_path_factory.mktemp("migrated") / "gmm.db"
    database = Database(f"sqlite:///{path}", blob_store=BlobStore(str(path.parent / "datasets")))
    upgrade(database.engine)
    database.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A migrated, empty database on each backend (SQLite: a copy of the migrated file)."""
    if request.param == "sqlite":
        path = tmp_path / "gmm.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("migrated_postgres")
    database = Database(url)
    with database.engine.begin() as connection:
        connection.execute(text("TRUNCATE jobs, models, datasets CASCADE"))
    database.dispose()
    return url


@pytest.fixture
def settings(database_url: str, tmp_path) -> Settings:
    return Settings(
        database_url=database_url,
        storage_url=str(tmp_path / "datasets"),
        worker_poll_seconds=0.02,
        progress_interval_seconds=0.0,
        lease_seconds=5.0,
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database.from_settings(settings)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The app over HTTP (httpx), with its embedded worker running."""
    with TestClient(create_app(settings, database=database)) as client:
        yield client


@pytest.fixture
def idle_client(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The app without a worker: fits stay queued."""
    with TestClient(create_app(settings, database=database, embedded_worker=False)) as client:
        yield client


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0, until=TERMINAL) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def serve_live(directory, **settings) -> Iterator[str]:
    """Yield the URL of a real server on a loopback port (SQLite under ``directory``,
    embedded worker) until the generator is closed; ``settings`` override the defaults."""
    url = f"sqlite:///{directory / 'gmm.db'}"
    database = Database(url)
    upgrade(database.engine)
    settings = Settings(
        **{
            "database_url": url,
            "worker_poll_seconds": 0.02,
            "progress_interval_seconds": 0.0,
            **settings,
        }
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, database=database), host="127.0.0.1", port=port, log_config=None
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    database.dispose()


@pytest.fixture(scope="session")
def live_url(tmp_path_factory):
    """A real server on a loopback port (SQLite, embedded worker), for clients."""
    yield from serve_live(tmp_path_factory.mktemp("live"))


# --- S3: a real S3-protocol server (moto's standalone server) on loopback ------------

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto server in its own process, for the session."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from .external import require

    program = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    require(Path(program).exists(), "moto_server (pip install 'moto[server]')")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [program, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A new, empty bucket on the moto server; credentials in the environment (as
    boto reads them), its name returned."""
    import boto3

    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"gmm-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return bucket
