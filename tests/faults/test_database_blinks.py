"""A database that blinks: PostgreSQL restarted or its backends killed mid-fit, the
server stopped while the API is asked questions, a SQLite file locked by another writer.

Each test causes the fault for real, on a private PostgreSQL server
(see conftest.py) or a SQLite file.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.api import create_app
from service.config import Settings
from service.db import Database
from service.db.migrate import upgrade
from service.db.tables import JobRow, JobStatus, ModelRow

from ..processes import serve_process
from ..worker.conftest import queue_fit, worker_process
from .conftest import wait_until

# The module's private PostgreSQL is initialised once, on one worker (pytest-xdist).
pytestmark = pytest.mark.xdist_group("private-postgres-blinks")

SLOW_FIT = dict(n_components=5, tol=0.0, max_iter=150, random_state=0)


def _job(database: Database, job_id: str) -> JobRow:
    with database.session() as session:
        return session.get(JobRow, job_id)


@pytest.fixture
def blinking(private_postgres, request):
    """A fresh, migrated database on the private server: (server, url, Database)."""
    url = private_postgres.fresh_database(f"blink_{request.node.name[:40].lower()}")
    database = Database(url)
    upgrade(database.engine)
    yield private_postgres, url, database
    database.dispose()


def _run_fit_through(fault, blinking, *, noticed: bool = True) -> JobRow:
    server, url, database = blinking
    settings = Settings(database_url=url)
    data = np.random.default_rng(0).normal(size=(20000, 3))
    _, job_id = queue_fit(database, settings, data, **SLOW_FIT)
    worker = worker_process(
        url,
        lease_seconds="3",
        progress_interval_seconds="0.05",
        worker_poll_seconds="0.05",
        log_level="warning",
    )
    try:
        wait_until(
            lambda: _job(database, job_id).progress["iteration"] >= 3,
            timeout=60,
            what="the fit running",
        )
        fault(server)
        database.engine.dispose()  # the test's own connections went with the server
        job = wait_until(
            lambda: (j := _job(database, job_id)).status not in ("queued", "running") and j,
            timeout=120,
            interval=0.2,
            what="the job finishing",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=30)
    assert job.status == JobStatus.succeeded, (job.error, log.decode()[-3000:])
    assert job.attempts == 1
    assert len(job.lower_bound_history) == SLOW_FIT["max_iter"]  # one fit, not restarted
    if noticed:  # the worker met the fault (not only its pool, which pre-pings)
        assert b"renewal failed" in log or b"database unavailable" in log, log.decode()[-3000:]
    with database.session() as session:
        model = session.get(ModelRow, job.model_id)
        assert (model.status, model.version) == ("ready", 1)
    return job


def test_a_fit_rides_out_a_postgres_restart(blinking):
    def restart(server):
        server.stop()
        time.sleep(1.0)  # away long enough for several progress writes to fail
        server.start()

    _run_fit_through(restart, blinking)


def test_a_fit_rides_out_its_backend_terminated(blinking):
    def terminate(server):
        # Kill the worker's backends again and again for two seconds: some of the
        # kills land inside a transaction (between the pool's pre-ping and the
        # commit), which the worker then meets as an error.
        engine = create_engine(server.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                connection.execute(_TERMINATE)
                time.sleep(0.005)
        engine.dispose()

    _run_fit_through(terminate, blinking)


_TERMINATE = text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def test_the_api_answers_503_while_postgres_is_away_and_keeps_the_connection(blinking):
    server, url, _ = blinking
    with serve_process(url, db_retry_after_seconds="3") as base, httpx.Client(base_url=base) as api:
        model_id = api.post("/v1/models", json={"n_components": 1}).json()["id"]
        imported = api.post(
            f"/v1/models/{model_id}/parameters",
            json={
                "covariance_type": "diag",
                "weights": [1.0],
                "means": [[0.0, 0.0]],
                "covariances": [[1.0, 1.0]],
            },
        )
        assert imported.status_code == 201, imported.text
        probe = {"data": [[0.0, 0.0]]}
        assert api.post(f"/v1/models/{model_id}/predict", json=probe).status_code == 200

        server.stop()
        try:
            for method, path, body in [
                ("GET", f"/v1/models/{model_id}", None),
                ("POST", f"/v1/models/{model_id}/predict", probe),  # the VersionResolver
                ("POST", "/v1/models", {"n_components": 2}),
                ("GET", "/v1/jobs", None),
            ]:
                answer = api.request(method, path, json=body)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"] == "3"
                assert answer.json()["type"] == "/problems/database-unavailable"
                assert answer.headers.get("connection", "").lower() != "close"
        finally:
            server.start()
        assert api.get(f"/v1/models/{model_id}").status_code == 200
        assert api.post(f"/v1/models/{model_id}/predict", json=probe).status_code == 200
        assert api.post("/v1/models", json={"n_components": 2}).status_code == 201


def test_a_sqlite_file_locked_past_the_busy_timeout_is_503(tmp_path):
    url = f"sqlite:///{tmp_path / 'gmm.db'}"
    settings = Settings(database_url=url, db_lock_timeout_seconds=0.2, embedded_worker=False)
    database = Database.from_settings(settings)
    upgrade(database.engine)
    with TestClient(create_app(settings, database=database)) as api:
        assert api.post("/v1/models", json={"n_components": 1}).status_code == 201
        holder = sqlite3.connect(tmp_path / "gmm.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        try:
            answer = api.post("/v1/models", json={"n_components": 1})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == str(settings.db_retry_after_seconds)
        assert api.post("/v1/models", json={"n_components": 1}).status_code == 201
    database.dispose()


def test_no_free_pooled_connection_is_503(tmp_path):
    url = f"sqlite:///{tmp_path / 'gmm.db'}"
    settings = Settings(database_url=url, db_pool_timeout_seconds=0.2, embedded_worker=False)
    database = Database.from_settings(settings)
    upgrade(database.engine)
    pool = database.engine.pool
    with TestClient(create_app(settings, database=database)) as api:
        held = [database.engine.connect() for _ in range(pool.size() + pool._max_overflow)]
        try:
            answer = api.get("/v1/models")
        finally:
            for connection in held:
                connection.close()
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"] == "/problems/database-unavailable"
        assert api.get("/v1/models").status_code == 200
    database.dispose()


_ENDLESS = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
    "SELECT count(*) FROM n"
)


def test_a_sqlite_statement_past_the_statement_timeout_is_interrupted(tmp_path):
    from sqlalchemy.exc import OperationalError

    from service.db.faults import is_transient
    from service.db.session import Timeouts

    database = Database(f"sqlite:///{tmp_path / 'gmm.db'}", Timeouts(statement=0.3))
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised, database.session() as session:
        session.execute(text(_ENDLESS))
    assert time.monotonic() - started < 3.0
    assert is_transient(raised.value)
    with database.session() as session:  # the connection serves the next statement
        assert session.execute(text("SELECT 1")).scalar() == 1
    database.dispose()
