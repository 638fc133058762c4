"""The smaller edges: slow clients cut off, one 413 body, quiet readiness probes,
a dataset a job needs cannot be deleted, a job handed back starts over."""

from __future__ import annotations

import logging
import signal
import socket
import time

import httpx
import numpy as np
from fastapi.testclient import TestClient

from service import jobs
from service.api import create_app
from service.db.tables import JobRow

from ..worker.conftest import queue_fit
from .conftest import start_serve


def test_a_client_that_trickles_its_headers_is_cut_off(tmp_path):
    process, base = start_serve(
        f"sqlite:///{tmp_path / 'gmm.db'}",
        embedded_worker=False,
        http_header_timeout_seconds="0.5",
        http_body_timeout_seconds="0.5",
        log_level="warning",
    )
    port = int(base.rsplit(":", 1)[1])
    try:
        timings = []
        for partial in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", None):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                if partial is None:  # a body that stops coming
                    partial = (
                        b"POST /v1/models HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
                    )
                started = time.monotonic()
                connection.sendall(partial)
                while connection.recv(4096):  # until the server closes
                    pass
                timings.append(time.monotonic() - started)
        assert all(0.4 < took < 3.0 for took in timings), timings
        assert httpx.get(f"{base}/healthz").status_code == 200  # others are served
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_both_413_paths_answer_the_same_problem(client):
    limit = client.app.state.settings.max_body_bytes
    big = b"[" + b"0," * (limit // 2) + b"0]"
    json_type = {"content-type": "application/json"}  # CSV bodies stream, bounded otherwise
    declared = client.post("/v1/datasets", content=big, headers=json_type)

    def chunks():
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    streamed = client.post("/v1/datasets", content=chunks(), headers=json_type)
    assert declared.status_code == streamed.status_code == 413
    assert declared.headers["content-type"] == streamed.headers["content-type"]
    assert declared.json() == streamed.json()
    assert declared.json()["type"] == "/problems/too-large"


def test_readiness_probes_log_nothing(client, caplog):
    with caplog.at_level(logging.DEBUG, logger="alembic"):
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
    assert not [r for r in caplog.records if r.name.startswith("alembic")]


def test_a_dataset_a_queued_job_needs_cannot_be_deleted(idle_client):
    dataset = idle_client.post("/v1/datasets", json={"data": [[0.0, 1.0], [1.0, 0.0]] * 5}).json()
    model = idle_client.post("/v1/models", json={"n_components": 1}).json()
    job = idle_client.post(f"/v1/models/{model['id']}/fit", json={"dataset_id": dataset["id"]})
    assert job.status_code == 202
    refused = idle_client.delete(f"/v1/datasets/{dataset['id']}")
    assert refused.status_code == 409, refused.text
    assert job.json()["id"] in refused.json()["detail"]
    assert idle_client.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 202
    assert idle_client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204


def test_a_job_handed_back_shows_no_progress(database, settings):
    _, job_id = queue_fit(database, settings, np.random.default_rng(0).normal(size=(50, 2)))
    claim = jobs.claim(database=database, worker_id="w", lease_seconds=30, max_attempts=3)
    with database.session() as session:
        progress = {"init": 1, "n_init": 1, "iteration": 7, "max_iter": 100, "lower_bound": -1.5}
        jobs.renew(
            session=session,
            job_id=claim.job_id,
            worker_id="w",
            lease_seconds=30,
            progress=progress,
            lower_bound_history=[-3.0, -1.5],
        )
    with database.session() as session:
        assert jobs.release(session=session, job_id=job_id, worker_id="w")
    with database.session() as session:
        job = session.get(JobRow, job_id)
        assert job.status == "queued" and job.attempts == 0
        assert job.progress == {
            "init": 0,
            "n_init": 1,
            "iteration": 0,
            "max_iter": 100,
            "lower_bound": None,
        }
        assert job.lower_bound_history == []
    with TestClient(create_app(settings, database=database, embedded_worker=False)) as api:
        assert api.get(f"/v1/jobs/{job_id}").json()["progress"]["iteration"] == 0
