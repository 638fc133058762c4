"""POST /v1/datasets/import: Parquet, CSV and .npy from file:// roots and S3, as a job."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from service import imports
from service.api import create_app
from service.datasets import stored_matrix

from ..conftest import wait_for_job
from .helpers import assert_problem

MATRIX = np.random.default_rng(0).normal(size=(1000, 3))
COLUMNS = ["x", "y", "z"]


def _table(matrix: np.ndarray, names=COLUMNS) -> pa.Table:
    return pa.table({name: matrix[:, j] for j, name in enumerate(names)})


def _csv(matrix: np.ndarray, names=COLUMNS) -> bytes:
    lines = [",".join(names)] + [",".join(repr(float(v)) for v in row) for row in matrix]
    return ("\n".join(lines) + "\n").encode()


def _npy(matrix: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, matrix)
    return buffer.getvalue()


def _parquet(matrix: np.ndarray, names=COLUMNS) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(_table(matrix, names), buffer, row_group_size=300)
    return buffer.getvalue()


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


@pytest.fixture
def importer(settings, database, root) -> Iterator[TestClient]:
    """The app (with its worker) allowed to read ``root``, and S3 on a local endpoint."""
    settings = settings.model_copy(update={"import_roots": str(root), "chunk_bytes": 8192})
    with TestClient(create_app(settings, database=database)) as client:
        yield client


@pytest.fixture
def s3_importer(settings, database, root, s3_endpoint, s3_bucket) -> Iterator[TestClient]:
    settings = settings.model_copy(
        update={"import_roots": str(root), "s3_endpoint_url": s3_endpoint}
    )
    with TestClient(create_app(settings, database=database)) as client:
        yield client


def _import(client: TestClient, **body) -> dict:
    response = client.post("/v1/datasets/import", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["model_id"], job["status"]) == ("import", None, "queued")
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return wait_for_job(client, job["id"])


def _stored(database, dataset_id: str) -> np.ndarray:
    with database.session() as session:
        return stored_matrix(session=session, dataset_id=dataset_id).read_all()


def _assert_failed(client: TestClient, job: dict, kind: str, *words: str) -> None:
    assert job["status"] == "failed", job
    assert job["error"]["type"] == kind, job["error"]
    for word in words:
        assert word in job["error"]["detail"], job["error"]
    dataset = client.get(f"/v1/datasets/{job['dataset_id']}").json()
    assert dataset["status"] == "failed"


def test_parquet_files_matching_a_glob_become_one_ready_dataset(importer, database, root):
    (root / "part-0.parquet").write_bytes(_parquet(MATRIX[:600]))
    (root / "part-1.parquet").write_bytes(_parquet(MATRIX[600:]))
    job = _import(importer, source=f"file://{root}/*.parquet", format="parquet", name="t")
    assert job["status"] == "succeeded", job
    assert job["result"] == {
        "dataset_id": job["dataset_id"],
        "n_samples": 1000,
        "n_features": 3,
        "files": 2,
    }
    assert (job["progress"]["iteration"], job["progress"]["rows_read"]) == (2, 1000)
    dataset = importer.get(f"/v1/datasets/{job['dataset_id']}").json()
    assert (dataset["status"], dataset["n_samples"], dataset["name"]) == ("ready", 1000, "t")
    np.testing.assert_array_equal(_stored(database, job["dataset_id"]), MATRIX)


def test_a_csv_import_reads_the_named_columns_in_their_order(importer, database, root):
    (root / "table.csv").write_bytes(_csv(MATRIX))
    job = _import(importer, source=f"file://{root}/table.csv", format="csv", columns=["z", "x"])
    assert job["status"] == "succeeded", job
    np.testing.assert_array_equal(_stored(database, job["dataset_id"]), MATRIX[:, [2, 0]])


def test_an_npy_import_is_exact(importer, database, root):
    (root / "m.npy").write_bytes(_npy(MATRIX))
    job = _import(importer, source=f"file://{root}/m.npy", format="npy")
    assert job["status"] == "succeeded", job
    np.testing.assert_array_equal(_stored(database, job["dataset_id"]), MATRIX)


def test_an_imported_dataset_can_be_fitted(importer, root):
    (root / "m.npy").write_bytes(_npy(MATRIX))
    job = _import(importer, source=f"file://{root}/m.npy", format="npy")
    model_id = importer.post("/v1/models", json={"n_components": 2}).json()["id"]
    fit = importer.post(f"/v1/models/{model_id}/fit", json={"dataset_id": job["dataset_id"]})
    assert wait_for_job(importer, fit.json()["id"])["status"] == "succeeded"


@pytest.mark.parametrize(
    ("name", "format", "body"),
    [
        ("t.parquet", "parquet", _parquet(MATRIX)),
        ("t.csv", "csv", _csv(MATRIX)),
        ("t.npy", "npy", _npy(MATRIX)),
    ],
)
def test_each_format_imports_from_s3(
    s3_importer, database, s3_endpoint, s3_bucket, name, format, body
):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=s3_bucket, Key=f"in/{name}", Body=body)
    job = _import(s3_importer, source=f"s3://{s3_bucket}/in/{name}", format=format)
    assert job["status"] == "succeeded", job
    np.testing.assert_allclose(_stored(database, job["dataset_id"]), MATRIX, rtol=1e-15)


@pytest.mark.parametrize(
    "source",
    [
        "file:///etc/passwd",
        "file://{root}/../secret.csv",
        "http://example.com/x.csv",
        "s3://",
        "s3://[",
        "s3://Bad_Bucket/x",
    ],
)
def test_a_source_outside_the_import_roots_is_422_at_once(importer, root, source):
    response = importer.post(
        "/v1/datasets/import", json={"source": source.format(root=root), "format": "csv"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/source", problem
    assert importer.get("/v1/datasets").json()["items"] == []


def test_a_missing_object_fails_the_job_and_the_dataset(importer, root):
    job = _import(importer, source=f"file://{root}/nothing-*.parquet", format="parquet")
    _assert_failed(importer, job, "import_source_missing", "nothing-*.parquet")


def test_a_missing_s3_object_fails_the_job(s3_importer, s3_bucket):
    job = _import(s3_importer, source=f"s3://{s3_bucket}/absent.npy", format="npy")
    _assert_failed(s3_importer, job, "import_source_missing", "absent.npy")


def test_a_parquet_text_column_fails_naming_the_file_and_column(importer, root):
    table = _table(MATRIX).append_column("label", pa.array(["a"] * len(MATRIX)))
    pq.write_table(table, root / "labelled.parquet")
    job = _import(importer, source=f"file://{root}/labelled.parquet", format="parquet")
    _assert_failed(importer, job, "import_invalid_data", "labelled.parquet", "'label'")


def test_parquet_files_with_other_columns_fail_naming_the_file(importer, database, root):
    (root / "a.parquet").write_bytes(_parquet(MATRIX[:500]))
    (root / "b.parquet").write_bytes(_parquet(MATRIX[500:, :2], ["x", "y"]))
    job = _import(importer, source=f"file://{root}/*.parquet", format="parquet")
    _assert_failed(importer, job, "import_invalid_data", "b.parquet", "same columns")
    assert not database.blob_store.exists(job["dataset_id"])  # no chunks left behind


def test_a_csv_bad_row_fails_naming_the_file_and_row(importer, database, root):
    body = _csv(MATRIX) + b"1.0,oops,2.0\n"
    (root / "bad.csv").write_bytes(body)
    job = _import(importer, source=f"file://{root}/bad.csv", format="csv")
    _assert_failed(importer, job, "import_invalid_data", "bad.csv", "row 1000", "'oops'")
    assert not database.blob_store.exists(job["dataset_id"])


def test_a_csv_row_of_the_wrong_width_fails_naming_the_line(importer, root):
    (root / "ragged.csv").write_bytes(b"a,b\n1,2\n3\n")
    job = _import(importer, source=f"file://{root}/ragged.csv", format="csv")
    _assert_failed(importer, job, "import_invalid_data", "ragged.csv", "line 3")


def test_a_dataset_still_importing_cannot_be_fitted(settings, database, root):
    (root / "m.npy").write_bytes(_npy(MATRIX))
    settings = settings.model_copy(update={"import_roots": str(root)})
    app = create_app(settings, database=database, embedded_worker=False)
    with TestClient(app) as client:
        job = client.post(
            "/v1/datasets/import", json={"source": f"file://{root}/m.npy", "format": "npy"}
        ).json()
        assert client.get(f"/v1/datasets/{job['dataset_id']}").json()["status"] == "importing"
        model_id = client.post("/v1/models", json={"n_components": 2}).json()["id"]
        response = client.post(f"/v1/models/{model_id}/fit", json={"dataset_id": job["dataset_id"]})
        assert_problem(response, 409)


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_without_pyarrow_parquet_and_csv_imports_are_422_naming_the_extra(
    importer, root, monkeypatch, format
):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on the slim image
    response = importer.post(
        "/v1/datasets/import", json={"source": f"file://{root}/x.{format}", "format": format}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/format", problem
    assert "gmm-service[imports]" in problem["errors"][0]["detail"]
    assert importer.get("/v1/datasets").json()["items"] == []


def test_without_pyarrow_an_npy_import_still_works(importer, database, root, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    matrix = np.arange(12.0).reshape(4, 3)
    (root / "m.npy").write_bytes(_npy(matrix))
    job = _import(importer, source=f"file://{root}/m.npy", format="npy")
    assert job["status"] == "succeeded", job
    np.testing.assert_array_equal(_stored(database, job["dataset_id"]), matrix)


def test_a_worker_without_pyarrow_fails_the_import_saying_what_it_needs(
    importer, root, monkeypatch
):
    (root / "t.parquet").write_bytes(_parquet(np.ones((3, 3))))
    monkeypatch.setattr(imports, "arrow_installed", lambda: True)  # the API's image has it
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # the worker's has not
    job = _import(importer, source=f"file://{root}/t.parquet", format="parquet")
    _assert_failed(importer, job, "import_unreadable", "gmm-service[imports]")
