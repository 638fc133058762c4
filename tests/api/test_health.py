"""Operations endpoints and the OpenAPI document."""

import json
from pathlib import Path

from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.db import Database

from .helpers import assert_problem

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_healthz_says_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database_with_a_running_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_readyz_is_503_when_the_schema_is_not_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app(Settings(database_url=url), database=Database(url), embedded_worker=False)
    with TestClient(app) as client:
        body = assert_problem(client.get("/readyz"), 503)
        assert "migrate" in body["detail"]


def test_unknown_routes_and_methods_are_problems(idle_client):
    assert_problem(idle_client.get("/v1/unknown"), 404)
    assert_problem(idle_client.put("/v1/models"), 405)


def test_openapi_file_matches_the_running_app(idle_client):
    assert json.loads(OPENAPI_FILE.read_text()) == idle_client.get("/openapi.json").json()


def test_readyz_is_503_when_the_embedded_worker_stopped(client):
    client.app.state.worker.stop(timeout=10)
    body = assert_problem(client.get("/readyz"), 503)
    assert "worker" in body["detail"]
