"""API keys and tenants: a tenant sees only its own data; keys are needed when configured."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import KeyRing, hash_key

from .helpers import assert_problem, three_blobs

KEYS = f"alpha:alpha-key,beta:sha256:{hash_key('beta-key')}"
ALPHA = {"Authorization": "Bearer alpha-key"}
BETA = {"Authorization": "Bearer beta-key"}


@pytest.fixture
def secured(settings, database):
    locked = settings.model_copy(update={"api_keys": KEYS, "metrics_public": False})
    with TestClient(create_app(locked, database=database)) as client:
        yield client


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic alpha-key"}]
)
def test_v1_needs_a_valid_bearer_key(secured, headers):
    for path in ("/v1/models", "/v1/datasets", "/v1/jobs"):
        problem = assert_problem(secured.get(path, headers=headers), 401)
        assert "Bearer" in problem["detail"]
    assert secured.get("/v1/models", headers=headers).headers["www-authenticate"] == "Bearer"


def test_health_stays_open_and_metrics_can_be_closed(secured):
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200
    assert_problem(secured.get("/metrics"), 401)
    assert secured.get("/metrics", headers=ALPHA).status_code == 200


def test_a_tenant_sees_only_its_own_resources(secured):
    dataset = secured.post(
        "/v1/datasets", json={"data": three_blobs(5).tolist()}, headers=ALPHA
    ).json()
    model = secured.post("/v1/models", json={"n_components": 2}, headers=ALPHA).json()
    job = secured.post(
        f"/v1/models/{model['id']}/fit", json={"dataset_id": dataset["id"]}, headers=ALPHA
    ).json()

    for path in (
        f"/v1/datasets/{dataset['id']}",
        f"/v1/models/{model['id']}",
        f"/v1/models/{model['id']}/parameters",
        f"/v1/models/{model['id']}/versions",
        f"/v1/models/{model['id']}/versions/1",
        f"/v1/jobs/{job['id']}",
        f"/v1/jobs/{job['id']}/events",
    ):
        assert_problem(secured.get(path, headers=BETA), 404)
    assert_problem(secured.delete(f"/v1/models/{model['id']}", headers=BETA), 404)
    assert_problem(secured.post(f"/v1/jobs/{job['id']}/cancel", headers=BETA), 404)
    assert_problem(secured.delete(f"/v1/models/{model['id']}/versions/1", headers=BETA), 404)
    assert_problem(
        secured.post(f"/v1/models/{model['id']}/activate", json={"version": 1}, headers=BETA),
        404,
    )
    assert_problem(
        secured.post(
            f"/v1/models/{model['id']}/predict", json={"data": [[0.0, 0.0]]}, headers=BETA
        ),
        404,
    )
    for listing in ("/v1/datasets", "/v1/models", "/v1/jobs"):
        assert secured.get(listing, headers=BETA).json()["items"] == []
        assert len(secured.get(listing, headers=ALPHA).json()["items"]) == 1


def test_a_tenant_cannot_fit_on_another_tenants_dataset(secured):
    dataset = secured.post(
        "/v1/datasets", json={"data": three_blobs(5).tolist()}, headers=ALPHA
    ).json()
    model = secured.post("/v1/models", json={"n_components": 2}, headers=BETA).json()
    response = secured.post(
        f"/v1/models/{model['id']}/fit", json={"dataset_id": dataset["id"]}, headers=BETA
    )
    assert_problem(response, 404)


def test_idempotency_keys_are_per_tenant(secured):
    key = {"Idempotency-Key": "shared"}
    first = secured.post("/v1/models", json={"n_components": 2}, headers={**ALPHA, **key}).json()
    second = secured.post("/v1/models", json={"n_components": 2}, headers={**BETA, **key}).json()
    assert first["id"] != second["id"]


def test_only_key_digests_are_kept():
    ring = KeyRing.parse("alpha:alpha-key")
    assert "alpha-key" not in repr(ring)
    assert ring.tenant_for("Bearer alpha-key") == "alpha"
    assert ring.tenant_for("Bearer alpha-key2") is None


@pytest.mark.parametrize("setting", ["nocolon", ":key", "bad tenant:key", "tenant:"])
def test_malformed_key_settings_are_refused(setting):
    with pytest.raises(ValueError, match="GMM_API_KEYS"):
        KeyRing.parse(setting)
