"""The inference routes' bodies and answers: JSON, npy in, npy/npz out, and bad input."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service import inference
from service.api.routers.inference import INLINE_BODY_BYTES

from .helpers import assert_problem, fitted_model, three_blobs

NPY = "application/x-npy"
NPZ = "application/x-npz"


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load(content: bytes):
    return np.load(io.BytesIO(content), allow_pickle=False)


@pytest.fixture
def model_id(client) -> str:
    return fitted_model(client)


POINTS = three_blobs(seed=4)[:50]


def _post(client, model_id: str, route: str, body: bytes, *, accept: str | None = None, **params):
    headers = {"Content-Type": NPY} | ({"Accept": accept} if accept else {})
    return client.post(
        f"/v1/models/{model_id}/{route}", content=body, headers=headers, params=params
    )


def test_an_npy_body_scores_as_the_same_rows_in_json(client, model_id):
    as_json = client.post(f"/v1/models/{model_id}/score", json={"data": POINTS.tolist()}).json()
    as_npy = _post(client, model_id, "score", _npy(POINTS))
    assert as_npy.status_code == 200 and as_npy.headers["content-type"] == "application/json"
    assert as_npy.json() == as_json


def test_an_npy_answer_is_the_routes_main_array(client, model_id):
    expected = client.post(f"/v1/models/{model_id}/score", json={"data": POINTS.tolist()}).json()
    answer = _post(client, model_id, "score", _npy(POINTS), accept=NPY)
    assert answer.headers["content-type"] == NPY
    np.testing.assert_array_equal(_load(answer.content), expected["log_likelihood"])


def test_an_npz_answer_holds_every_array(client, model_id):
    expected = client.post(
        f"/v1/models/{model_id}/anomalies", json={"data": POINTS.tolist(), "threshold": 3.0}
    ).json()
    answer = _post(client, model_id, "anomalies", _npy(POINTS), accept=NPZ, threshold=3.0)
    assert answer.headers["content-type"] == NPZ
    with np.load(io.BytesIO(answer.content)) as arrays:
        np.testing.assert_array_equal(arrays["scores"], expected["scores"])
        assert arrays["is_anomaly"].tolist() == expected["is_anomaly"]
        assert float(arrays["threshold"]) == 3.0


def test_npy_options_come_as_query_parameters(client, model_id):
    answer = _post(client, model_id, "predict", _npy(POINTS), accept=NPZ, return_probabilities=True)
    with np.load(io.BytesIO(answer.content)) as arrays:
        assert arrays["probabilities"].shape == (len(POINTS), 3)
        np.testing.assert_array_equal(arrays["labels"], arrays["probabilities"].argmax(axis=1))


def test_a_json_body_can_ask_for_an_npy_answer(client, model_id):
    answer = client.post(
        f"/v1/models/{model_id}/predict", json={"data": POINTS.tolist()}, headers={"Accept": NPY}
    )
    labels = client.post(f"/v1/models/{model_id}/predict", json={"data": POINTS.tolist()}).json()
    np.testing.assert_array_equal(_load(answer.content), labels["labels"])


def test_the_first_acceptable_media_range_wins(client, model_id):
    answer = client.post(
        f"/v1/models/{model_id}/score",
        json={"data": POINTS.tolist()},
        headers={"Accept": "text/html, application/x-npy;q=0.9, application/json"},
    )
    assert answer.headers["content-type"] == NPY


@pytest.mark.parametrize(
    "route, accept, extra",
    [
        ("score", "text/html", {}),
        ("anomalies", NPY, {}),  # several arrays: npz only
        ("predict", NPY, {"return_probabilities": True}),
    ],
)
def test_an_answer_the_route_cannot_produce_is_406(client, model_id, route, accept, extra):
    response = client.post(
        f"/v1/models/{model_id}/{route}",
        json={"data": POINTS.tolist(), **extra},
        headers={"Accept": accept},
    )
    assert_problem(response, 406)


def _truncated() -> bytes:
    return _npy(POINTS)[:-40]


def _claims_more_rows() -> bytes:
    body = _npy(POINTS)
    return body.replace(b"(50, 2)", b"(90, 2)")


def _object_array() -> bytes:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }"
    header += b" " * (118 - len(header)) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64


BAD_NPY = [
    ("not npy at all", b"hello, world"),
    ("truncated", _truncated()),
    ("a header that claims more data than sent", _claims_more_rows()),
    ("object array", _object_array()),
    ("one-dimensional", _npy(np.zeros(4))),
    ("three-dimensional", _npy(np.zeros((2, 2, 2)))),
    ("strings", _npy(np.array([["a", "b"]]))),
    ("complex numbers", _npy(np.zeros((2, 2), dtype=complex))),
    ("wrong width", _npy(np.zeros((3, 5)))),
    ("no rows", _npy(np.zeros((0, 2)))),
    ("a row with no feature present", _npy(np.array([[0.0, 1.0], [np.nan, np.nan]]))),
    ("infinity", _npy(np.array([[np.inf, 0.0]]))),
]


@pytest.mark.parametrize("body", [case[1] for case in BAD_NPY], ids=[c[0] for c in BAD_NPY])
def test_a_malformed_npy_body_is_422_problem_json(client, model_id, body):
    problem = assert_problem(_post(client, model_id, "score", body), 422)
    assert problem["errors"]


@pytest.mark.parametrize(
    "body, pointer",
    [
        (b'{"data": [[0, 0], [1]]}', "#/data/1"),
        (b'{"data": [[0, true]]}', "#/data/0/1"),
        (b'{"data": [[0, "1x"]]}', "#/data/0/1"),
        (b'{"data": [[0, 1]], "extra": 1}', "#/extra"),
        (b'{"data": [[0, 1]], "threshold": "high"}', "#/threshold"),
        (b'{"data": [0, 1]}', "#/data/0"),
        (b'{"data": [[0, 1e400]]}', "#/data/0/1"),
        (b'{"data": []}', "#/data"),
    ],
)
def test_a_bad_json_body_names_the_field_as_before(client, model_id, body, pointer):
    response = client.post(
        f"/v1/models/{model_id}/anomalies",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert pointer in [e["pointer"] for e in problem["errors"]], problem


def test_a_repeated_key_is_read_as_pydantic_reads_it(client, model_id):
    body = b'{"data": [[9, 9]], "data": [[0, 0]], "threshold": 100}'
    answer = client.post(
        f"/v1/models/{model_id}/anomalies",
        content=body,
        headers={"Content-Type": "application/json"},
    ).json()
    assert answer["is_anomaly"] == [False] and answer["threshold"] == 100


def test_an_unsupported_body_type_is_415(client, model_id):
    response = client.post(
        f"/v1/models/{model_id}/score", content=b"0,0", headers={"Content-Type": "text/csv"}
    )
    assert_problem(response, 415)


@pytest.mark.parametrize("value", ["0", "-1", "x", str(2**31)])
def test_a_bad_version_query_is_422_naming_it(client, model_id, value):
    problem = assert_problem(
        client.post(
            f"/v1/models/{model_id}/score", json={"data": [[0, 0]]}, params={"version": value}
        ),
        422,
    )
    assert problem["errors"][0]["pointer"] == "#/version"


def test_a_nested_array_in_a_big_json_body_is_422_naming_the_cell(client, model_id):
    body = b'{"data": [[1, 2], [[1], 3]' + b", [0.25, 0.5]" * 1000 + b"]}"
    problem = assert_problem(
        client.post(
            f"/v1/models/{model_id}/score",
            content=body,
            headers={"Content-Type": "application/json"},
        ),
        422,
    )
    assert problem["errors"][0]["pointer"] == "#/data/1/0"


def test_a_body_past_the_inline_limit_gets_the_same_answer_in_a_thread(client, model_id):
    rows = np.random.default_rng(0).normal(size=(INLINE_BODY_BYTES // 10, 2))
    body = json.dumps({"data": rows.tolist()}).encode()
    big = client.post(
        f"/v1/models/{model_id}/score", content=body, headers={"Content-Type": "application/json"}
    ).json()
    small = [
        client.post(f"/v1/models/{model_id}/score", json={"data": part.tolist()}).json()
        for part in np.array_split(rows, 16)
    ]
    assert len(body) > INLINE_BODY_BYTES
    np.testing.assert_array_equal(
        big["log_likelihood"], np.concatenate([s["log_likelihood"] for s in small])
    )


def test_big_bodies_take_turns_in_threads_as_many_at_once_as_the_limiter_allows(
    client, model_id, monkeypatch
):
    running, most = 0, 0
    lock = threading.Lock()
    score = inference.score

    def counted_score(served, data):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return score(served, data)

    monkeypatch.setattr(inference, "score", counted_score)
    rows = np.random.default_rng(0).normal(size=(INLINE_BODY_BYTES // 10, 2))
    body = json.dumps({"data": rows.tolist()}).encode()
    tokens = client.app.state.big_bodies.total_tokens
    with ThreadPoolExecutor(max_workers=tokens + 3) as pool:
        answers = list(
            pool.map(
                lambda _: client.post(
                    f"/v1/models/{model_id}/score",
                    content=body,
                    headers={"Content-Type": "application/json"},
                ),
                range(tokens + 3),
            )
        )
    assert [answer.status_code for answer in answers] == [200] * (tokens + 3)
    assert most == tokens
