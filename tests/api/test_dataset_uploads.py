"""CSV and .npy bodies stream to the blob store, bounded by GMM_MAX_DATASET_BYTES."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.blobstore import BlobStore
from service.datasets import stored_matrix
from service.db import Database

from .helpers import assert_problem

NPY = {"content-type": "application/x-npy"}
CSV = {"content-type": "text/csv"}


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    return buffer.getvalue()


def _pieces(body: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
def small_database(settings) -> Iterator[Database]:
    """The database with a blob store of 1 KiB chunks."""
    database = Database.from_settings(settings.model_copy(update={"chunk_bytes": 1024}))
    yield database
    database.dispose()


@pytest.fixture
def small_chunks(settings, small_database) -> Iterator[tuple[TestClient, BlobStore]]:
    """The app with 1 KiB chunks and a 100 kB dataset limit, and its blob store."""
    settings = settings.model_copy(update={"chunk_bytes": 1024, "max_dataset_bytes": 100_000})
    app = create_app(settings, database=small_database, embedded_worker=False)
    with TestClient(app) as client:
        yield client, small_database.blob_store


def _stored(database: Database, dataset_id: str) -> np.ndarray:
    with database.session() as session:
        return stored_matrix(session=session, dataset_id=dataset_id).read_all()


def test_a_streamed_npy_body_is_stored_exactly_in_row_chunks(small_chunks, small_database):
    client, _ = small_chunks
    matrix = np.random.default_rng(0).normal(size=(500, 4))  # 32 rows a chunk
    response = client.post("/v1/datasets?name=big", content=_pieces(_npy(matrix)), headers=NPY)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["n_samples"], body["status"], body["name"]) == (500, "ready", "big")
    assert body["sha256"] == hashlib.sha256(matrix.tobytes()).hexdigest()
    np.testing.assert_array_equal(_stored(small_database, body["id"]), matrix)


def test_a_streamed_csv_body_is_parsed_across_piece_boundaries(small_chunks, small_database):
    client, _ = small_chunks
    matrix = np.round(np.random.default_rng(1).normal(size=(300, 3)), 6)
    text = "a,b,c\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in matrix)
    response = client.post("/v1/datasets", content=_pieces(text.encode(), 77), headers=CSV)
    assert response.status_code == 201, response.text
    np.testing.assert_array_equal(_stored(small_database, response.json()["id"]), matrix)


def test_a_bad_csv_row_is_422_naming_the_row_and_leaves_nothing_stored(small_chunks):
    client, store = small_chunks
    good = "".join(f"{i},{i}\n" for i in range(400))
    response = client.post(
        "/v1/datasets", content=_pieces((good + "1,oops\n").encode()), headers=CSV
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/data/400/1"
    assert client.get("/v1/datasets").json()["items"] == []
    assert not store.fs.exists(store.root) or store.fs.ls(store.root) == []


def test_a_ragged_csv_row_is_422_naming_the_row(small_chunks):
    client, _ = small_chunks
    problem = assert_problem(
        client.post("/v1/datasets", content=b"1,2\n3,4\n5\n", headers=CSV), 422
    )
    assert problem["errors"][0]["pointer"] == "#/data/2"


def test_a_non_finite_npy_value_is_422_naming_the_cell(small_chunks):
    client, _ = small_chunks
    matrix = np.zeros((100, 2))
    matrix[70, 1] = np.inf
    problem = assert_problem(client.post("/v1/datasets", content=_npy(matrix), headers=NPY), 422)
    assert problem["errors"][0]["pointer"] == "#/data/70/1"


def test_a_truncated_npy_body_is_422_and_leaves_nothing_stored(small_chunks):
    client, store = small_chunks
    body = _npy(np.ones((200, 4)))
    assert_problem(client.post("/v1/datasets", content=body[:-8], headers=NPY), 422)
    assert client.get("/v1/datasets").json()["items"] == []
    assert not store.fs.exists(store.root) or store.fs.ls(store.root) == []


def test_a_body_past_the_dataset_limit_is_413_naming_the_setting(small_chunks):
    client, store = small_chunks
    body = _npy(np.ones((20_000, 1)))  # 160 kB, over the 100 kB limit
    problem = assert_problem(
        client.post("/v1/datasets", content=_pieces(body, 8192), headers=NPY), 413
    )
    assert "GMM_MAX_DATASET_BYTES" in problem["detail"]
    assert not store.fs.exists(store.root) or store.fs.ls(store.root) == []


def test_a_declared_length_past_the_dataset_limit_is_413_at_once(small_chunks):
    client, _ = small_chunks
    body = _npy(np.ones((20_000, 1)))
    problem = assert_problem(client.post("/v1/datasets", content=body, headers=NPY), 413)
    assert "GMM_MAX_DATASET_BYTES" in problem["detail"]


def test_a_streamed_body_is_not_bounded_by_the_request_body_limit(settings, database):
    settings = settings.model_copy(update={"max_body_bytes": 1000})
    with TestClient(create_app(settings, database=database, embedded_worker=False)) as client:
        body = _npy(np.ones((1000, 2)))  # 16 kB
        assert client.post("/v1/datasets", content=body, headers=NPY).status_code == 201
        big_json = {"data": [[1.0, 2.0]] * 100}
        assert_problem(client.post("/v1/datasets", json=big_json), 413)


def test_a_fortran_order_npy_is_422_saying_how_to_save_it(small_chunks):
    client, _ = small_chunks
    body = _npy(np.asfortranarray(np.ones((10, 3))))
    problem = assert_problem(client.post("/v1/datasets", content=body, headers=NPY), 422)
    assert "C order" in problem["detail"]
