"""Hostile bodies: each gets a 4xx problem+json, and the database is unchanged afterwards."""

from __future__ import annotations

import pytest

from .helpers import assert_problem, fitted_model

JSON = {"content-type": "application/json"}
DEPTH_BOMB = b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}"
HUGE_ROW = b'{"data": [[' + b",".join([b"1.5"] * 1_100_000) + b"]]}"
# Past the small-body cut-over, so that simdjson's fast path reads it first.
NESTED_IN_A_BIG_BODY = b'{"data": [[1, 2], [[1], 3]' + b", [0.25, 0.5]" * 1000 + b"]}"

# (method, path template, body bytes, headers, expected status)
CASES = {
    "nan token": ("POST", "/v1/datasets", b'{"data": [[1, NaN]]}', JSON, 422),
    "infinity token": ("POST", "/v1/datasets", b'{"data": [[Infinity, 1]]}', JSON, 422),
    "1e400 overflows": ("POST", "/v1/datasets", b'{"data": [[1e400, 1]]}', JSON, 422),
    "ragged rows": ("POST", "/v1/datasets", b'{"data": [[1, 2], [3]]}', JSON, 422),
    "nested array in a big body": ("POST", "/v1/datasets", NESTED_IN_A_BIG_BODY, JSON, 422),
    "depth bomb": ("POST", "/v1/datasets", DEPTH_BOMB, JSON, 422),
    "row past the feature limit": ("POST", "/v1/datasets", HUGE_ROW, JSON, 422),
    "truncated json": ("POST", "/v1/datasets", b'{"data": [[1, 2]', JSON, 422),
    "invalid utf-8 json": (
        "POST",
        "/v1/datasets",
        b'{"name": "\xff\xfe", "data": [[1]]}',
        JSON,
        422,
    ),
    "invalid utf-8 csv": (
        "POST",
        "/v1/datasets",
        b"\xff\xfe1,2\n",
        {"content-type": "text/csv"},
        422,
    ),
    "wrong content type": ("POST", "/v1/datasets", b"1,2", {"content-type": "image/png"}, 415),
    "no content type": ("POST", "/v1/datasets", b"1,2", {}, 415),
    "sql in a name": (
        "POST",
        "/v1/models",
        b'{"name": "x\'); DROP TABLE models; --", "n_components": 0}',
        JSON,
        422,
    ),
    "nul in a name": ("POST", "/v1/models", b'{"name": "a\\u0000b"}', JSON, 422),
    "negative components": ("POST", "/v1/models", b'{"n_components": -3}', JSON, 422),
    "huge components": ("POST", "/v1/models", b'{"n_components": 1000000000000}', JSON, 422),
    "string components": ("POST", "/v1/models", b'{"n_components": "three"}', JSON, 422),
    "zero max_iter": ("POST", "/v1/models", b'{"max_iter": 0}', JSON, 422),
    "negative reg_covar": ("POST", "/v1/models", b'{"reg_covar": -1}', JSON, 422),
    "nan tol": ("POST", "/v1/models", b'{"tol": NaN}', JSON, 422),
    "array body": ("POST", "/v1/models", b"[1, 2, 3]", JSON, 422),
    "form body": (
        "POST",
        "/v1/models",
        b"n_components=3",
        {"content-type": "application/x-www-form-urlencoded"},
        422,
    ),
    "predict as plain text": (
        "POST",
        "/v1/models/{model}/predict",
        b"0,0",
        {"content-type": "text/plain"},
        415,
    ),
    "predict depth bomb": ("POST", "/v1/models/{model}/predict", DEPTH_BOMB, JSON, 422),
    "predict nan": ("POST", "/v1/models/{model}/predict", b'{"data": [[NaN, 0]]}', JSON, 422),
    "predict empty": ("POST", "/v1/models/{model}/predict", b'{"data": []}', JSON, 422),
    "predict strings": ("POST", "/v1/models/{model}/predict", b'{"data": [["a", "b"]]}', JSON, 422),
    "predict wrong width": (
        "POST",
        "/v1/models/{model}/score",
        b'{"data": [[1, 2, 3]]}',
        JSON,
        422,
    ),
    "anomaly threshold inf": (
        "POST",
        "/v1/models/{model}/anomalies",
        b'{"data": [[0, 0]], "threshold": 1e999}',
        JSON,
        422,
    ),
    "sample zero": ("POST", "/v1/models/{model}/sample", b'{"n_samples": 0}', JSON, 422),
    "sample huge": (
        "POST",
        "/v1/models/{model}/sample",
        b'{"n_samples": 1000000000000}',
        JSON,
        422,
    ),
    "sample negative seed": (
        "POST",
        "/v1/models/{model}/sample",
        b'{"n_samples": 1, "random_state": -1}',
        JSON,
        422,
    ),
    "fit negative weight": (
        "POST",
        "/v1/models/{model}/fit",
        b'{"data": [[1, 1], [2, 2], [3, 3]], "sample_weight": [1, -1, 1]}',
        JSON,
        422,
    ),
    "fit both sources": (
        "POST",
        "/v1/models/{model}/fit",
        b'{"data": [[1, 1]], "dataset_id": "ds_x"}',
        JSON,
        422,
    ),
    "id with slashes": ("GET", "/v1/models/..%2F..%2Fetc", b"", {}, 404),
    "bad limit": ("GET", "/v1/models?limit=abc", b"", {}, 422),
}


def _snapshot(client) -> dict:
    return {
        "datasets": client.get("/v1/datasets?limit=500").json()["items"],
        "models": client.get("/v1/models?limit=500").json()["items"],
        "jobs": client.get("/v1/jobs?limit=500").json()["items"],
    }


@pytest.fixture
def fitted(client):
    return fitted_model(client)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_body_is_a_4xx_problem_and_changes_nothing(client, fitted, case):
    method, path, body, headers, status = CASES[case]
    before = _snapshot(client)
    response = client.request(method, path.format(model=fitted), content=body, headers=headers)
    assert_problem(response, status)
    assert _snapshot(client) == before
