"""The blob store: row chunks of a matrix in a folder and on S3 (a real moto server)."""

from __future__ import annotations

import hashlib
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from service.blobstore import BlobStore, ChunkReader


@pytest.fixture(params=["folder", "s3"])
def store(request, tmp_path) -> BlobStore:
    if request.param == "folder":
        return BlobStore(str(tmp_path / "blobs"), chunk_bytes=1024)
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    return BlobStore(
        f"s3://{bucket}/datasets",
        chunk_bytes=1024,
        storage_options={"client_kwargs": {"endpoint_url": endpoint}},
    )


MATRIX = np.random.default_rng(0).normal(size=(100, 3))  # 42 rows of 24 bytes per chunk


def test_a_matrix_is_stored_in_row_chunks_of_about_chunk_bytes(store):
    written = store.write_matrix("ds_a", MATRIX)
    assert written.chunk_rows == [42, 42, 16]
    assert (written.n_samples, written.n_features, written.size_bytes) == (100, 3, 2400)


def test_the_sha256_is_that_of_the_whole_matrixs_float64_bytes(store):
    written = store.write_matrix("ds_a", MATRIX)
    assert written.sha256 == hashlib.sha256(MATRIX.tobytes()).hexdigest()


def test_chunks_read_back_exactly_one_by_one_or_whole(store):
    written = store.write_matrix("ds_a", MATRIX)
    stored = store.stored_matrix("ds_a", written.chunk_rows, 3)
    assert stored.n_samples == 100 and len(stored.chunks) == 3
    np.testing.assert_array_equal(stored.read_chunk(1), MATRIX[42:84])
    np.testing.assert_array_equal(np.concatenate(list(stored.iter_chunks())), MATRIX)
    np.testing.assert_array_equal(stored.read_all(), MATRIX)


def test_rows_appended_in_pieces_equal_the_matrix_stored_at_once(store):
    writer = store.writer("ds_a", 3)
    for start in range(0, 100, 7):
        writer.append(MATRIX[start : start + 7])
    written = writer.close()
    assert written.chunk_rows == [42, 42, 16]
    assert written.sha256 == hashlib.sha256(MATRIX.tobytes()).hexdigest()
    np.testing.assert_array_equal(
        store.stored_matrix("ds_a", written.chunk_rows, 3).read_all(), MATRIX
    )


def test_a_chunk_reader_survives_pickling_and_reads_its_rows(store):
    written = store.write_matrix("ds_a", MATRIX)
    reader = store.stored_matrix("ds_a", written.chunk_rows, 3).chunks[2]
    assert isinstance(reader, ChunkReader) and reader.row_offset == 84
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reader))(), MATRIX[84:])


def test_the_chunks_make_chunked_data_for_an_out_of_core_fit(store):
    written = store.write_matrix("ds_a", MATRIX)
    data = store.stored_matrix("ds_a", written.chunk_rows, 3).chunked()
    assert list(data.chunk_rows) == [42, 42, 16] and data.n_features == 3
    np.testing.assert_array_equal(data.readers[0](), MATRIX[:42])


def test_delete_removes_every_chunk(store):
    store.write_matrix("ds_a", MATRIX)
    store.write_matrix("ds_b", MATRIX[:5])
    store.delete("ds_a")
    assert not store.exists("ds_a")
    assert store.exists("ds_b")


def test_an_aborted_writer_leaves_nothing(store):
    writer = store.writer("ds_a", 3)
    writer.append(MATRIX)
    writer.abort()
    assert not store.exists("ds_a")


def test_the_store_lists_the_datasets_it_holds_chunks_for(store):
    assert store.dataset_ids() == []
    store.write_matrix("ds_b", MATRIX)
    store.write_matrix("ds_a", MATRIX[:5])
    assert store.dataset_ids() == ["ds_a", "ds_b"]
    store.delete("ds_b")
    assert store.dataset_ids() == ["ds_a"]


def test_last_written_is_when_the_newest_chunk_was_written(store):
    before = datetime.now(UTC) - timedelta(seconds=5)  # S3 times are whole seconds
    store.write_matrix("ds_a", MATRIX)
    written = store.last_written("ds_a")
    assert before <= written <= datetime.now(UTC) + timedelta(seconds=1)
    assert store.last_written("ds_none") is None
