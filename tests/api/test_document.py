"""The OpenAPI document states every rule the server enforces, and the server enforces it.

Limits come from the live settings, cursors and CSV bodies have patterns the
server applies as written, "exactly one of" is a ``oneOf``, a malformed body
is a 422 of ``#/`` on every route, undocumented query parameters are refused,
and a 405 lists every method of the path.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api import create_app
from service.config import Settings
from service.errors import Invalid
from service.matrices import CSV_PATTERN, matrix_from_csv
from service.pagination import CURSOR_PATTERN

from .helpers import assert_problem, create_model, fitted_model, three_blobs


def _document(client: TestClient) -> dict:
    return client.get("/openapi.json").json()


def _body_schema(document: dict, name: str) -> dict:
    """A component schema with its references resolvable (for a validator)."""
    return {**document["components"]["schemas"][name], "components": document["components"]}


# --- limits from the live settings ----------------------------------------------------


def test_maximums_come_from_the_settings_the_app_runs_with(settings, database):
    tight = settings.model_copy(
        update={"max_components": 7, "max_iter_limit": 150, "max_n_init": 3, "max_rows": 90}
    )
    with TestClient(create_app(tight, database=database, embedded_worker=False)) as client:
        schemas = _document(client)["components"]["schemas"]
        config = schemas["ModelCreate"]["properties"]
        assert config["n_components"]["maximum"] == 7
        assert config["max_iter"]["maximum"] == 150
        assert config["n_init"]["maximum"] == 3
        assert config["n_components"]["x-setting"] == "GMM_MAX_COMPONENTS"
        data = schemas["DatasetCreate"]["properties"]["data"]
        assert data["maxItems"] == 90 and data["items"]["maxItems"] == tight.max_features
        sample = schemas["SampleRequest"]["properties"]["n_samples"]
        assert sample["maximum"] == tight.max_sample_size

        assert client.post("/v1/models", json={"n_components": 7}).status_code == 201
        problem = assert_problem(client.post("/v1/models", json={"n_components": 8}), 422)
        assert problem["errors"][0]["pointer"] == "#/n_components"


def test_the_committed_document_holds_the_default_limits():
    with open("openapi/openapi.json") as file:
        committed = json.load(file)
    defaults = Settings()
    config = committed["components"]["schemas"]["ModelCreate"]["properties"]
    assert config["n_components"]["maximum"] == defaults.max_components


# --- JSON types, as the schema states them ------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"contamination": False},
        {"n_components": True},
        {"n_components": "2"},
        {"tol": "0.1"},
        {"random_state": 1.5},
    ],
)
def test_a_value_of_another_json_type_is_422(client, body):
    problem = assert_problem(client.post("/v1/models", json=body), 422)
    assert problem["errors"][0]["pointer"] == f"#/{next(iter(body))}"


def test_an_integer_may_be_written_with_a_zero_fraction(client):
    response = client.post("/v1/models", json={"n_components": 2.0, "random_state": 5.0})
    assert response.status_code == 201, response.text
    assert (response.json()["n_components"], response.json()["random_state"]) == (2, 5)


def test_a_json_boolean_is_not_a_number_nor_a_number_a_boolean(client):
    model_id = create_model(client)
    body = {"data": [[0.0, 1.0]] * 5, "warm_start": 1}
    problem = assert_problem(client.post(f"/v1/models/{model_id}/fit", json=body), 422)
    assert problem["errors"][0]["pointer"] == "#/warm_start"


# --- exactly one of dataset_id / data ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"dataset_id": "ds_1"}, True),
        ({"data": [[1.0]], "dataset_id": None}, True),
        ({"dataset_id": None, "data": None}, False),
        ({}, False),
        ({"dataset_id": "ds_1", "data": [[1.0]]}, False),
    ],
)
def test_fit_takes_exactly_one_source_in_the_document_and_the_server(client, body, valid):
    validator = jsonschema_rs.validator_for(_body_schema(_document(client), "FitRequest"))
    assert validator.is_valid(body) is valid
    model_id = create_model(client, n_components=1)
    status = client.post(f"/v1/models/{model_id}/fit", json=body).status_code
    assert (status != 422) is valid


# --- cursors --------------------------------------------------------------------------


def test_the_cursor_pattern_is_the_server_rule(client):
    document = _document(client)
    for path in ("/v1/datasets", "/v1/models", "/v1/jobs", "/v1/models/{model_id}/versions"):
        (cursor,) = [
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "cursor"
        ]
        assert cursor["schema"]["anyOf"][0]["pattern"] == CURSOR_PATTERN
    for path in ("/v1/datasets", "/v1/models", "/v1/jobs"):
        for cursor in ("0" * 18, "1", "999999999999999999.zzz", "1732300000000000.mdl_x"):
            response = client.get(path, params={"cursor": cursor})
            assert response.status_code == 200, response.text
        for cursor in ("0" * 19, "1.", "a", "1.a.b", "bm90LWEtY3Vyc29y", "1/2"):
            assert_problem(client.get(path, params={"cursor": cursor}), 422)


def test_a_cursor_is_a_position_whoever_wrote_it(client):
    for name in ("a", "b", "c"):
        client.post("/v1/datasets", json={"name": name, "data": [[1.0]]})
    first = client.get("/v1/datasets", params={"limit": 2}).json()
    assert re.fullmatch(CURSOR_PATTERN, first["next_cursor"])
    rest = client.get("/v1/datasets", params={"cursor": first["next_cursor"]}).json()
    assert [d["name"] for d in first["items"] + rest["items"]] == ["c", "b", "a"]
    now = int(datetime.now(UTC).timestamp() * 1_000_000) + 10_000_000
    assert len(client.get("/v1/datasets", params={"cursor": str(now)}).json()["items"]) == 3
    assert client.get("/v1/datasets", params={"cursor": "1"}).json()["items"] == []


# --- CSV bodies -------------------------------------------------------------------------


def _server_takes(text: str) -> bool:
    try:
        matrix_from_csv(text.encode())
    except Invalid as exc:
        # The rules beyond the pattern (x-also-checked) are a separate matter.
        return "rectangular" in exc.detail or "finite" in exc.detail
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(CSV_PATTERN.replace("$", r"\Z"), fullmatch=False))
def test_every_csv_body_the_pattern_allows_is_read(text):
    assert _server_takes(text)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet="0123456789.,-+eE \t\r\nx\ufeff_", max_size=30))
def test_the_server_reads_a_csv_body_exactly_when_the_pattern_allows_it(text):
    assert _server_takes(text) is (re.fullmatch(CSV_PATTERN, text) is not None)


def test_csv_cells_that_are_not_numbers_are_a_422_naming_the_cell(client):
    response = client.post(
        "/v1/datasets", content=b"x,y\n1,2\n3,four\n", headers={"Content-Type": "text/csv"}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/data/1/1"


# --- malformed bodies: one rule, 422 of #/ -----------------------------------------------


@pytest.mark.parametrize("body", [b"\x8f,m\xee", b"{not json", b'{"n_samples": 1'])
@pytest.mark.parametrize(
    "path",
    ["/v1/models", "/activate", "/sample", "/fit", "/predict", "/parameters"],
)
def test_a_malformed_json_body_is_a_422_of_the_whole_body_on_every_route(client, path, body):
    if path == "/predict":  # answers 409 before reading the body of an unfitted model
        path = f"/v1/models/{fitted_model(client)}{path}"
    elif path != "/v1/models":
        path = f"/v1/models/{create_model(client)}{path}"
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/"


# --- query parameters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/datasets"),
        ("post", "/v1/models/{id}/predict"),  # reads its query itself
        ("get", "/v1/models/{id}/parameters"),
        ("get", "/healthz"),
    ],
)
def test_an_undocumented_query_parameter_is_a_422_naming_it(client, method, path):
    path = path.format(id=create_model(client))
    response = getattr(client, method)(path, params={"verison": "2"})
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["pointer"] == "#/verison"


# --- 405 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "/v1/datasets",
        "/v1/models/{model_id}",
        "/v1/models/{model_id}/parameters",  # GET and POST in two routers
        "/v1/models/{model_id}/versions/{version}",
        "/v1/jobs/{job_id}/cancel",
    ],
)
def test_a_405_is_a_problem_listing_every_method_of_the_path(client, template):
    documented = {method.upper() for method in _document(client)["paths"][template]}
    response = client.request("OPTIONS", template.format(model_id="mdl_x", version=1, job_id="j"))
    assert_problem(response, 405)
    listed = {method.strip() for method in response.headers["allow"].split(",")}
    assert listed - {"HEAD"} == documented


# --- x-also-checked --------------------------------------------------------------------


def test_rules_beyond_json_schema_are_listed_on_their_operations(client):
    paths = _document(client)["paths"]
    fit = paths["/v1/models/{model_id}/fit"]["post"]
    assert fit["x-also-checked"]["status"] == 422
    assert any("sample_weight" in rule for rule in fit["x-also-checked"]["rules"])
    assert "Also checked" in fit["description"]
    assert "x-also-checked" not in paths["/v1/models"]["get"]
    assert "x-also-checked" in paths["/v1/datasets"]["post"]  # Idempotency-Key, CSV, npy


# --- Idempotency-Key after a delete ----------------------------------------------------


def test_replaying_a_key_whose_dataset_was_deleted_is_409(client):
    headers = {"Idempotency-Key": "k-1"}
    body = {"data": three_blobs(5).tolist()}
    created = client.post("/v1/datasets", json=body, headers=headers).json()
    assert client.post("/v1/datasets", json=body, headers=headers).json()["id"] == created["id"]
    client.delete(f"/v1/datasets/{created['id']}")
    problem = assert_problem(client.post("/v1/datasets", json=body, headers=headers), 409)
    assert created["id"] in problem["detail"]


# --- answers tell the truth too ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, on the overflow itself
def test_a_fit_whose_training_scores_overflow_fails_instead_of_storing_nan(client):
    from ..conftest import wait_for_job

    model_id = create_model(client, n_components=1)
    # enough rows that scoring goes through the quadratic-feature kernel, whose
    # squares overflow at this scale (a handful of rows is scored from x - mu)
    rows = [[-3.55e222 * (1 + i / 100), 1.7976931348623157e308 * (1 - i / 100)] for i in range(40)]
    body = {"data": rows}
    job = wait_for_job(client, client.post(f"/v1/models/{model_id}/fit", json=body).json()["id"])
    assert (job["status"], job["error"]["type"]) == ("failed", "numerical_error"), job
    assert client.get(f"/v1/models/{model_id}").json()["fit_summary"] is None
