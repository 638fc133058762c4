"""Metrics, request ids and log lines."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient

from service.api import create_app
from service.logs import JSONFormatter

from .helpers import assert_problem, fitted_model


def _sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        named = line.startswith((name + "{", name + " "))
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in metrics")


def test_metrics_count_requests_by_route_template_and_status(client):
    model_id = fitted_model(client)
    for _ in range(3):
        client.post(f"/v1/models/{model_id}/score", json={"data": [[0.0, 0.0]]})
    text = client.get("/metrics").text
    assert (
        _sample(
            text,
            "gmm_http_requests_total",
            method="POST",
            route="/v1/models/{model_id}/score",
            status="200",
        )
        == 3
    )
    assert (
        _sample(
            text,
            "gmm_http_request_duration_seconds_count",
            method="POST",
            route="/v1/models/{model_id}/score",
        )
        == 3
    )


def test_metrics_report_jobs_queue_fits_and_cache(client):
    model_id = fitted_model(client)
    client.post(f"/v1/models/{model_id}/predict", json={"data": [[0.0, 0.0]]})
    client.post(f"/v1/models/{model_id}/predict", json={"data": [[0.0, 0.0]]})
    text = client.get("/metrics").text
    assert _sample(text, "gmm_jobs", status="succeeded") == 1
    assert _sample(text, "gmm_queue_depth") == 0
    assert _sample(text, "gmm_fit_duration_seconds_count") == 1
    assert _sample(text, "gmm_fit_iterations_count") == 1
    assert _sample(text, "gmm_model_cache_misses_total") == 1
    assert _sample(text, "gmm_model_cache_hits_total") >= 1


def test_metrics_can_be_turned_off(settings, database):
    off = settings.model_copy(update={"metrics_enabled": False})
    with TestClient(create_app(off, database=database, embedded_worker=False)) as client:
        assert_problem(client.get("/metrics"), 404)


def test_request_id_is_echoed_or_made_up(idle_client):
    given = idle_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = idle_client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and made != "abc-123"


def test_each_request_logs_one_line_with_its_route_status_and_id(idle_client, caplog):
    with caplog.at_level(logging.INFO, logger="service.api.requests"):
        idle_client.get("/v1/models/mdl_nope", headers={"X-Request-ID": "req-7"})
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == "req-7"]
    line = json.loads(JSONFormatter().format(record))
    assert line["route"] == "/v1/models/{model_id}"
    assert (line["method"], line["status"], line["level"]) == ("GET", 404, "info")
    assert line["duration_ms"] >= 0
