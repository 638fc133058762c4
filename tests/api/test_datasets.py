"""/v1/datasets over HTTP, on SQLite and PostgreSQL."""

import hashlib
import io

import numpy as np
import pytest

from .helpers import assert_problem

MATRIX = [[0.5, 1.0], [2.0, -3.25], [1e-3, 7.0]]


def test_json_dataset_is_stored_with_its_metadata(client):
    response = client.post("/v1/datasets", json={"name": "small", "data": MATRIX})
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "small"
    assert (body["n_samples"], body["n_features"], body["size_bytes"]) == (3, 2, 48)
    assert body["sha256"] == hashlib.sha256(np.array(MATRIX).tobytes()).hexdigest()
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


@pytest.mark.parametrize("text", ["x,y\n0.5,1\n2,-3.25\n0.001,7\n", "0.5,1\n2,-3.25\n0.001,7\n"])
def test_csv_dataset_is_accepted_with_or_without_a_header(client, text):
    response = client.post(
        "/v1/datasets?name=csv", content=text.encode(), headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(np.array(MATRIX).tobytes()).hexdigest()
    assert response.json()["name"] == "csv"


def test_npy_dataset_is_stored_exactly(client):
    buffer = io.BytesIO()
    np.save(buffer, np.array(MATRIX, dtype=np.float32))
    response = client.post(
        "/v1/datasets", content=buffer.getvalue(), headers={"content-type": "application/x-npy"}
    )
    assert response.status_code == 201, response.text
    expected = np.array(MATRIX, dtype=np.float32).astype(np.float64)
    assert response.json()["sha256"] == hashlib.sha256(expected.tobytes()).hexdigest()


def test_unsupported_content_type_is_415(client):
    assert_problem(
        client.post("/v1/datasets", content=b"<x/>", headers={"content-type": "application/xml"}),
        415,
    )


@pytest.mark.parametrize(
    "body, pointer",
    [
        (b'{"data": [[1, 2], [3]]}', "#/data/1"),
        (b'{"data": [[1, NaN]]}', None),
        (b'{"data": [[1, 1e400]]}', "#/data/0/1"),
        (b'{"data": [[1, "a"]]}', "#/data/0/1"),
        (b'{"data": []}', "#/data"),
        (b'{"data": [[]]}', "#/data/0"),
        (b'{"name": "x"}', "#/data"),
        (b'{"data": [[1]], "colour": "red"}', "#/colour"),
        (b'{"data": [[1]], "name": "a\\u0000b"}', "#/name"),
    ],
)
def test_malformed_json_matrices_are_422_naming_the_field(client, body, pointer):
    response = client.post(
        "/v1/datasets", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422)
    if pointer is not None:
        assert pointer in [e["pointer"] for e in problem["errors"]], problem


def test_csv_with_a_non_numeric_cell_is_422_naming_the_cell(client):
    response = client.post(
        "/v1/datasets", content=b"1,2\n3,x\n", headers={"content-type": "text/csv"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/data/1/1"


def test_garbage_npy_is_422(client):
    assert_problem(
        client.post("/v1/datasets", content=b"nope", headers={"content-type": "application/x-npy"}),
        422,
    )


def test_list_pages_with_a_cursor(client):
    ids = [client.post("/v1/datasets", json={"data": MATRIX}).json()["id"] for _ in range(3)]
    first = client.get("/v1/datasets?limit=2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.get(f"/v1/datasets?limit=2&cursor={first['next_cursor']}").json()
    assert second["next_cursor"] is None
    seen = [d["id"] for d in first["items"] + second["items"]]
    assert sorted(seen) == sorted(ids)


def test_a_forged_cursor_is_422(client):
    assert_problem(client.get("/v1/datasets?cursor=bm90LWEtY3Vyc29y"), 422)


@pytest.mark.parametrize("limit", [0, 501, -1])
def test_limit_out_of_range_is_422(client, limit):
    assert_problem(client.get(f"/v1/datasets?limit={limit}"), 422)


def test_unknown_dataset_is_404(client):
    assert_problem(client.get("/v1/datasets/ds_missing"), 404)
    assert_problem(client.delete("/v1/datasets/ds_missing"), 404)


def test_deleted_dataset_is_gone(client):
    dataset_id = client.post("/v1/datasets", json={"data": MATRIX}).json()["id"]
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert_problem(client.get(f"/v1/datasets/{dataset_id}"), 404)


def test_body_over_the_size_limit_is_413(settings, database):
    from fastapi.testclient import TestClient

    from service.api import create_app

    small = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(small, database=database, embedded_worker=False)) as client:
        big = {"data": [[1.0] * 10] * 50}
        assert_problem(client.post("/v1/datasets", json=big), 413)
        assert_problem(client.post("/v1/models/x/predict", json=big), 413)
        assert client.get("/v1/datasets").json()["items"] == []


def test_rows_over_the_limit_are_422(settings, database):
    from fastapi.testclient import TestClient

    from service.api import create_app

    small = settings.model_copy(update={"max_rows": 2})
    with TestClient(create_app(small, database=database, embedded_worker=False)) as client:
        assert_problem(client.post("/v1/datasets", json={"data": MATRIX}), 422)
