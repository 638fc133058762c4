"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

Every check runs, ``positive_data_acceptance`` included: every generated
request must get a documented status and a body that conforms to the
documented schema, no 5xx, schema-invalid requests are refused and
schema-valid ones accepted. ``schemathesis.toml`` (shared with the CLI run)
names the answers a schema-valid request may legitimately get beyond the
defaults, each for a reason the document states (``x-also-checked``).

A modest example count keeps CI fast; run ``pytest -m slow`` for the longer
run. Operations are driven through schemathesis' Hypothesis strategies
directly: its pytest plugin does not yet run under pytest 9.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

from service.api import create_app
from service.config import Settings
from service.db import Database
from service.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = json.loads((ROOT / "openapi" / "openapi.json").read_text())
OPERATIONS = [
    (method.upper(), path) for path, methods in OPENAPI["paths"].items() for method in methods
]


@pytest.fixture
def api_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    database = Database(url)
    upgrade(database.engine)
    app = create_app(Settings(database_url=url), database=database, embedded_worker=False)
    config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    with TestClient(app):  # run the lifespan
        yield schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
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
        case.call_and_validate()

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_own_schema(api_schema, method, path):
    _fuzz(api_schema, method, path, examples=30)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_conforms_to_its_own_schema_long_run(api_schema, method, path):
    _fuzz(api_schema, method, path, examples=500)
