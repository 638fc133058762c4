"""Several API processes over one database: a change committed through one is seen by
the very next request to another (read-your-writes across replicas)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from ..conftest import wait_for_job
from ..processes import serve_process
from .helpers import three_blobs

PROBE = {"data": [[0.0, 0.0], [3.0, 3.0], [6.0, 0.0]]}


def _fit(client: httpx.Client, model_id: str, data: np.ndarray) -> None:
    job = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()}).json()
    assert wait_for_job(client, job["id"])["status"] == "succeeded"


def _score(client: httpx.Client, model_id: str, **params) -> list[float]:
    response = client.post(f"/v1/models/{model_id}/score", json=PROBE, params=params)
    assert response.status_code == 200, response.text
    return response.json()["log_likelihood"]


@pytest.fixture
def replicas(database_url):
    """Two API processes on one database; the first runs the embedded worker."""
    with (
        serve_process(database_url, embedded_worker=True) as first,
        serve_process(database_url) as second,
        httpx.Client(base_url=first, timeout=30) as a,
        httpx.Client(base_url=second, timeout=30) as b,
    ):
        yield a, b


def test_a_rollback_through_one_replica_is_served_by_the_next_request_to_another(replicas):
    a, b = replicas
    model_id = a.post("/v1/models", json={"n_components": 3, "random_state": 0}).json()["id"]
    _fit(a, model_id, three_blobs())
    first = _score(b, model_id)
    _fit(a, model_id, three_blobs(seed=1) * 2.0)
    second = _score(b, model_id)  # the next request to b already serves version 2
    assert second != first
    assert a.post(f"/v1/models/{model_id}/activate", json={"version": 1}).status_code == 200
    assert _score(b, model_id) == first
    assert _score(b, model_id, version=2) == second


def test_a_delete_through_one_replica_is_404_at_the_next_request_to_another(replicas):
    a, b = replicas
    model_id = a.post("/v1/models", json={"n_components": 3, "random_state": 0}).json()["id"]
    _fit(a, model_id, three_blobs())
    _score(b, model_id)
    assert a.delete(f"/v1/models/{model_id}").status_code == 204
    assert b.post(f"/v1/models/{model_id}/score", json=PROBE).status_code == 404
