"""Idempotency-Key: a retry returns the first answer and creates nothing new."""

from __future__ import annotations

import pytest

from .helpers import assert_problem, create_model, three_blobs

ROUTES = {
    "dataset": ("/v1/datasets", {"data": [[1.0, 2.0], [3.0, 4.0]]}, {"data": [[9.0, 9.0]]}),
    "model": ("/v1/models", {"n_components": 2}, {"n_components": 3}),
    "fit": (
        "/v1/models/{model}/fit",
        {"data": three_blobs(20).tolist()},
        {"data": three_blobs(30).tolist()},
    ),
}


def _count(client, route: str, model_id: str) -> int:
    listing = {
        "dataset": "/v1/datasets?limit=500",
        "model": "/v1/models?limit=500",
        "fit": f"/v1/jobs?model_id={model_id}&limit=500",
    }[route]
    return len(client.get(listing).json()["items"])


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_retry_with_the_same_key_returns_the_first_answer(idle_client, route):
    model_id = create_model(idle_client)
    path, body, _ = ROUTES[route]
    path = path.format(model=model_id)
    headers = {"Idempotency-Key": f"retry-{route}"}
    first = idle_client.post(path, json=body, headers=headers)
    count = _count(idle_client, route, model_id)
    again = idle_client.post(path, json=body, headers=headers)
    assert first.status_code in (201, 202)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["location"] == first.headers["location"]
    assert _count(idle_client, route, model_id) == count


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_the_same_key_with_another_body_is_422(idle_client, route):
    model_id = create_model(idle_client)
    path, body, other = ROUTES[route]
    path = path.format(model=model_id)
    headers = {"Idempotency-Key": f"clash-{route}"}
    assert idle_client.post(path, json=body, headers=headers).status_code in (201, 202)
    count = _count(idle_client, route, model_id)
    problem = assert_problem(idle_client.post(path, json=other, headers=headers), 422)
    assert problem["errors"][0]["pointer"] == "#/Idempotency-Key"
    assert _count(idle_client, route, model_id) == count


def test_requests_without_a_key_are_not_deduplicated(idle_client):
    first = idle_client.post("/v1/models", json={"n_components": 2}).json()
    second = idle_client.post("/v1/models", json={"n_components": 2}).json()
    assert first["id"] != second["id"]


def test_a_rejected_request_does_not_use_up_its_key(idle_client):
    headers = {"Idempotency-Key": "after-a-422"}
    assert_problem(idle_client.post("/v1/models", json={"n_components": 0}, headers=headers), 422)
    assert (
        idle_client.post("/v1/models", json={"n_components": 2}, headers=headers).status_code == 201
    )


def test_answers_past_their_ttl_are_forgotten_by_the_worker(idle_client, settings, database):
    from datetime import timedelta

    from sqlalchemy import update

    from service.db.tables import IdempotencyRow, utcnow
    from service.worker import Worker

    headers = {"Idempotency-Key": "old"}
    first = idle_client.post("/v1/models", json={"n_components": 2}, headers=headers).json()
    Worker(database, settings).housekeeping()  # within the TTL: kept
    replay = idle_client.post("/v1/models", json={"n_components": 2}, headers=headers).json()
    assert replay["id"] == first["id"]
    with database.session() as session:
        session.execute(update(IdempotencyRow).values(created_at=utcnow() - timedelta(hours=25)))
    Worker(database, settings).housekeeping()
    again = idle_client.post("/v1/models", json={"n_components": 2}, headers=headers).json()
    assert again["id"] != first["id"]  # the key was forgotten, so this is a new request
