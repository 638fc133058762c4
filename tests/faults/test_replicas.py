"""Replicas started at the same moment on a fresh database all come up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.db import Database
from service.db.migrate import current_revision, head_revision

REPLICAS = 3


def _migrate_together(url: str) -> None:
    env = {**os.environ, "GMM_DATABASE_URL": url, "GMM_LOG_LEVEL": "warning"}
    # Started back to back: each spends its first second importing, then migrates.
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "service", "migrate"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(REPLICAS)
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read().decode()[-2000:]) for p in processes]
    assert [status for status, _ in outcomes] == [0] * REPLICAS, outcomes
    database = Database(url)
    assert current_revision(database.engine) == head_revision()
    database.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_replicas_migrating_a_fresh_database_at_once_all_succeed(backend, tmp_path, request):
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh' / 'gmm.db'}"
    else:
        url = request.getfixturevalue("private_postgres").fresh_database("replicas")
    _migrate_together(url)
