"""SIGTERM to a real ``gmm-service serve`` with an event stream open and a fit running."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import numpy as np

from service.db import Database
from service.db.migrate import upgrade
from service.db.tables import JobRow

from .conftest import start_serve, wait_until


def _follow(url: str, events: list[tuple[str, dict]], opened: threading.Event) -> None:
    with httpx.stream("GET", url, timeout=httpx.Timeout(5.0, read=30.0)) as stream:
        opened.set()
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.split(":", 1)[1])))
    events.append(("<closed>", {}))


def test_sigterm_ends_streams_hands_the_job_back_and_exits_zero(tmp_path):
    url = f"sqlite:///{tmp_path / 'gmm.db'}"
    database = Database(url)
    upgrade(database.engine)
    process, base = start_serve(url, embedded_worker=True, shutdown_seconds="8")
    try:
        data = np.random.default_rng(0).normal(size=(20000, 3)).tolist()
        model = httpx.post(
            f"{base}/v1/models", json={"n_components": 5, "tol": 0.0, "max_iter": 10000}
        ).json()
        job = httpx.post(f"{base}/v1/models/{model['id']}/fit", json={"data": data}).json()
        wait_until(
            lambda: httpx.get(f"{base}/v1/jobs/{job['id']}").json()["progress"]["iteration"] >= 3,
            timeout=60,
            what="the fit running",
        )
        events: list[tuple[str, dict]] = []
        opened = threading.Event()
        follower = threading.Thread(
            target=_follow, args=(f"{base}/v1/jobs/{job['id']}/events", events, opened)
        )
        follower.start()
        assert opened.wait(10)
        wait_until(lambda: events, timeout=10, what="a first progress event")

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
        took = time.monotonic() - started
        log = process.stderr.read().decode()
        follower.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 0, log[-3000:]
    assert took < 8.0, (took, log[-3000:])
    names = [name for name, _ in events]
    assert names[-2:] == ["shutdown", "<closed>"], names
    assert events[-2][1]["id"] == job["id"]
    with database.session() as session:
        row = session.get(JobRow, job["id"])
    assert row.status in ("queued", "succeeded"), row.status
    if row.status == "queued":  # handed back, to start over
        assert (row.attempts, row.worker_id, row.progress["iteration"]) == (0, None, 0)
        assert row.lower_bound_history == []
    assert "job released to the queue" in log
    print(f"SIGTERM to exit: {took:.2f} s")
    database.dispose()


def test_sigterm_ends_streams_in_every_api_process_of_workers_n(tmp_path):
    url = f"sqlite:///{tmp_path / 'gmm.db'}"
    database = Database(url)
    upgrade(database.engine)
    database.dispose()
    process, base = start_serve(url, embedded_worker=False, args=("--workers", "2"))
    try:
        model = httpx.post(f"{base}/v1/models", json={"n_components": 1}).json()
        job = httpx.post(
            f"{base}/v1/models/{model['id']}/fit", json={"data": [[0.0], [1.0], [2.0]]}
        ).json()  # no worker: it stays queued, and its streams stay open
        followers, streams = [], []
        for _ in range(4):  # spread over both processes
            events: list[tuple[str, dict]] = []
            opened = threading.Event()
            follower = threading.Thread(
                target=_follow, args=(f"{base}/v1/jobs/{job['id']}/events", events, opened)
            )
            follower.start()
            assert opened.wait(10)
            followers.append(follower)
            streams.append(events)
        wait_until(lambda: all(streams), timeout=10, what="a first event on every stream")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=20)
        took = time.monotonic() - started
        for follower in followers:
            follower.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read().decode()
    assert status == 0, log[-3000:]
    assert took < 8.0, took
    for events in streams:
        assert [name for name, _ in events][-2:] == ["shutdown", "<closed>"], events


def test_a_job_whose_iteration_outlasts_the_shutdown_is_handed_back(
    database, settings, monkeypatch
):
    from service.worker import Worker, runner

    from ..worker.conftest import queue_fit

    iterating, released = threading.Event(), threading.Event()

    def one_long_iteration(data, config, *, callback, **_):
        callback(runner.FitProgress(init=1, n_init=1, iteration=1, max_iter=100, lower_bound=-1.0))
        iterating.set()
        released.wait(30)  # deaf to the stop: it lasts until the test has seen the hand-back
        raise runner.FitCancelled()

    monkeypatch.setattr(runner, "fit_mixture", one_long_iteration)
    _, job_id = queue_fit(database, settings, np.zeros((10, 2)))
    worker = Worker(database, settings)
    worker.start_in_thread()
    assert iterating.wait(10)
    started = time.monotonic()
    worker.stop(timeout=0.5)
    assert time.monotonic() - started < 2.0
    with database.session() as session:
        job = session.get(JobRow, job_id)
        assert (job.status, job.attempts, job.worker_id) == ("queued", 0, None)
    assert worker._thread.is_alive()  # still in the iteration that outlasted the shutdown
    released.set()
    worker._thread.join(10)  # let the fit thread end before the database goes
