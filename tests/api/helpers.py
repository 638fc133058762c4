"""Small builders shared by the API tests."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from ..conftest import wait_for_job

TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def three_blobs(n_per_blob: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(size=(n_per_blob, 2)) * 0.8 + m for m in TRUE_MEANS])


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def create_model(client: TestClient, **config) -> str:
    response = client.post("/v1/models", json={"n_components": 3, "random_state": 0, **config})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def fitted_model(client: TestClient, data: np.ndarray | None = None, **config) -> str:
    model_id = create_model(client, **config)
    data = three_blobs() if data is None else data
    response = client.post(f"/v1/models/{model_id}/fit", json={"data": data.tolist()})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    return model_id
