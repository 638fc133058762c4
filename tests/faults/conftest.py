"""A private PostgreSQL server that the fault tests may stop, restart and kill.

The shared server (``GMM_TEST_POSTGRES_URL``) is left alone: each module that
needs one gets a cluster of its own (Debian's binaries, ``initdb`` as the
``postgres`` user into a temporary directory, a free port, a private socket
directory), torn down afterwards. Skipped where the binaries are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from ..processes import free_port

BIN = Path(os.environ.get("GMM_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(*command: str) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PrivatePostgres:
    """One cluster: ``url``, and ``stop``/``start``/``restart`` that really do it."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.port = port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _ctl(self, *args: str, timeout: float = 60) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres(
                str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-s", *args
            ),
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )

    def init(self) -> None:
        subprocess.run(
            _as_postgres(
                str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N"
            ),
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        self._ctl("-l", str(self.root / "server.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "-l", str(self.root / "server.log"), "restart")

    def terminate_backends(self, application_name: str | None = None) -> int:
        """pg_terminate_backend on every other client backend (of one application)."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                return len(
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                            "AND (CAST(:name AS text) IS NULL OR application_name = :name)"
                        ),
                        {"name": application_name},
                    ).all()
                )
        finally:
            engine.dispose()

    def fresh_database(self, name: str) -> str:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not (BIN / "initdb").exists():
        pytest.skip(f"no PostgreSQL binaries in {BIN} (GMM_TEST_POSTGRES_BIN)")
    root = Path(tempfile.mkdtemp(prefix="gmm-pg-"))
    server = PrivatePostgres(root, free_port())
    (server.sockets).mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(server.sockets, "postgres", "postgres")
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):  # already stopped, or never started
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def start_serve(
    database_url: str, *, embedded_worker: bool, args: tuple[str, ...] = (), **settings: str
):
    """``gmm-service serve`` as a process of the test's own: (process, base URL)."""
    port = free_port()
    env = {
        **os.environ,
        "GMM_DATABASE_URL": database_url,
        "GMM_WORKER_POLL_SECONDS": "0.05",
        "GMM_PROGRESS_INTERVAL_SECONDS": "0.05",
        "GMM_LOG_LEVEL": "info",
        "GMM_LOG_JSON": "true",
        **{f"GMM_{name.upper()}": value for name, value in settings.items()},
    }
    flag = "--embedded-worker" if embedded_worker else "--no-embedded-worker"
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), flag, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited {process.returncode}: {process.stderr.read()!r}")
        try:
            return httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, timeout=30, what="serve answering")
    return process, base
