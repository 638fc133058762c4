"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every generated request must get a documented status and a body that conforms
to the documented schema; no 5xx. A modest example count keeps CI fast; run
``pytest -m slow`` for the longer run.

Operations are driven through schemathesis' Hypothesis strategies directly:
its pytest plugin does not yet run under pytest 9.

One check is left out: ``positive_data_acceptance`` expects every
schema-valid request to succeed, but some rules cannot be written in the
schema — a configurable limit (``GMM_MAX_COMPONENTS``), a cursor this service
issued, "exactly one of dataset_id or data", CSV cells that are numbers. Those
get a 422 problem naming the field, which the other checks still validate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api import create_app
from service.config import Settings
from service.db import Database
from service.db.migrate import upgrade

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())
OPERATIONS = [
    (method.upper(), path) for path, methods in OPENAPI["paths"].items() for method in methods
]


@pytest.fixture
def api_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    database = Database(url)
    upgrade(database.engine)
    app = create_app(Settings(database_url=url), database=database, embedded_worker=False)
    with TestClient(app):  # run the lifespan
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    database.dispose()


def _fuzz(api_schema, method: str, path: str, examples: int) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_own_schema(api_schema, method, path):
    _fuzz(api_schema, method, path, examples=30)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_own_schema_long_run(api_schema, method, path):
    _fuzz(api_schema, method, path, examples=500)
