"""The worker's heartbeat file and `gmm-service worker --check`, its container healthcheck."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from service.worker import Worker
from service.worker.heartbeat import HeartbeatFile, check, stale_after

from .conftest import queue_fit, worker_process


def _check_command(path, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GMM_")}
    if path is not None:
        env["GMM_WORKER_HEARTBEAT_FILE"] = str(path)
    env.update({f"GMM_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "service", "worker", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_after_is_two_leases_and_a_poll():
    assert stale_after(lease_seconds=30.0, worker_poll_seconds=0.2) == 60.2


def test_a_fresh_heartbeat_passes_the_check(tmp_path):
    path = tmp_path / "heartbeat"
    path.touch()
    result = _check_command(path)
    assert result.returncode == 0, result.stderr


def test_a_stale_heartbeat_fails_the_check_with_its_age(tmp_path):
    path = tmp_path / "heartbeat"
    path.touch()
    _age(path, 10)
    result = _check_command(path, lease_seconds="2", worker_poll_seconds="0.5")
    assert result.returncode == 1
    assert "old" in result.stderr and "limit 4.5 s" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_heartbeat_file_fails_the_check(tmp_path):
    result = _check_command(tmp_path / "absent")
    assert result.returncode == 1
    assert "no heartbeat file" in result.stderr


def test_the_check_fails_when_no_heartbeat_file_is_configured():
    result = _check_command(None)
    assert result.returncode == 1
    assert "GMM_WORKER_HEARTBEAT_FILE" in result.stderr


def test_check_reads_the_age_against_the_limit(tmp_path):
    path = tmp_path / "heartbeat"
    path.touch()
    assert check(path, limit=5.0, now=time.time() + 4.0)[0]
    assert not check(path, limit=5.0, now=time.time() + 6.0)[0]


def test_heartbeat_file_touches_at_most_once_per_interval(tmp_path):
    path = tmp_path / "heartbeat"
    heartbeat = HeartbeatFile(path, min_interval=1.0)
    heartbeat.beat(now=100.0)
    assert path.exists()
    _age(path, 30)
    heartbeat.beat(now=100.5)  # too soon: left alone
    assert time.time() - path.stat().st_mtime > 20
    heartbeat.beat(now=101.5)
    assert time.time() - path.stat().st_mtime < 5


def test_heartbeat_file_that_cannot_be_written_does_not_raise(tmp_path):
    HeartbeatFile(tmp_path / "no such folder" / "heartbeat").beat()


def test_worker_beats_the_file_between_claims(database, settings, tmp_path):
    path = tmp_path / "heartbeat"
    worker = Worker(database, settings.model_copy(update={"worker_heartbeat_file": path}))
    worker.start_in_thread()
    try:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists()
    finally:
        worker.stop(timeout=10)


def test_worker_renewing_a_lease_beats_the_file(database, settings, tmp_path):
    path = tmp_path / "heartbeat"
    worker = Worker(database, settings.model_copy(update={"worker_heartbeat_file": path}))
    worker.beat(0.0)
    _age(path, 30)
    worker.beat(10.0)  # as _Lease.touch does after a renewal
    assert time.time() - path.stat().st_mtime < 5


def test_a_running_worker_process_passes_the_check(database_url, settings, database, tmp_path):
    path = tmp_path / "heartbeat"
    process = worker_process(database_url, worker_heartbeat_file=str(path))
    try:
        queue_fit(database, settings, np.random.default_rng(0).normal(size=(200, 2)))
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        result = _check_command(path)
        assert result.returncode == 0, result.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)
