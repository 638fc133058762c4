"""`gmm-service serve --workers N`: N API processes on one port, one embedded fit worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from .api.helpers import three_blobs
from .conftest import wait_for_job
from .processes import serve_process


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _serve_pids() -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in words and b"--workers" in words:
            pids.append(int(cmdline.parent.name))
    return pids


def test_workers_runs_that_many_api_processes_and_one_fit_worker(tmp_path):
    log = tmp_path / "serve.log"
    url = f"sqlite:///{tmp_path / 'gmm.db'}"
    with (
        serve_process(
            url,
            embedded_worker=True,
            args=("--workers", "2"),
            stderr=log,
            log_json="true",
            log_level="info",
        ) as base,
        httpx.Client(base_url=base, timeout=30) as http,
    ):
        # This test's own `serve --workers` (a child of this process): other tests or
        # runs on the machine (pytest-xdist's other worker, a benchmark) may have theirs.
        (supervisor,) = [pid for pid in _serve_pids() if pid in _children(os.getpid())]
        assert len(_children(supervisor)) >= 2  # the API processes (and uvicorn's helper)
        model = http.post("/v1/models", json={"n_components": 3, "random_state": 0}).json()
        job = http.post(
            f"/v1/models/{model['id']}/fit", json={"data": three_blobs().tolist()}
        ).json()
        assert wait_for_job(http, job["id"])["status"] == "succeeded"
        answers = {
            http.post(f"/v1/models/{model['id']}/score", json={"data": [[0.0, 0.0]]}).text
            for _ in range(20)
        }
        assert len(answers) == 1  # every process serves the same version
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert sum(line["message"].startswith("Started server process") for line in lines) == 2
    assert sum(line["message"] == "worker started" for line in lines) == 1
