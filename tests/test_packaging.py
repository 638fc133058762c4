"""What can be checked of the Docker image and the compose stack without a Docker engine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from service.cli import main
from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARIABLES = {f"GMM_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_builds_in_two_stages_and_runs_as_a_non_root_user():
    text = _dockerfile()
    assert re.findall(r"^FROM .*", text, re.M) == [
        "FROM python:3.11-slim AS deps",
        "FROM deps AS build",
        "FROM python:3.11-slim",
    ]
    assert "COPY --from=deps /opt/runtime /opt/venv" in text  # the dependencies' layer
    assert "COPY --from=build /opt/project/ /opt/venv/" in text  # this project's, small
    assert re.search(r"^USER gmm$", text, re.M)
    assert re.search(r"HEALTHCHECK .*\n.*/healthz", text)
    assert text.rstrip().endswith('CMD ["gmm-service", "serve"]')


def test_dockerfile_installs_this_project_as_the_tests_do():
    # the dependencies and the extras a build asks for (--build-arg EXTRAS=dask), then this project
    text = _dockerfile()
    assert re.search(r' pip install setuptools wheel "\.\$\{EXTRAS:\+\[\$EXTRAS\]\}"', text)
    assert re.search(r"^RUN pip install --no-deps --no-build-isolation \.$", text, re.M)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["gmm-service"] == "service.cli:main"


def test_dockerfile_installs_the_dependencies_in_a_layer_before_the_source():
    # a change to the source rebuilds only the last, small layers
    text = _dockerfile()
    dependencies = text.index("COPY pyproject.toml ./")
    assert dependencies < text.index("setuptools wheel") < text.index("COPY service ./service")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "**/__pycache__", "tests"} <= set(ignored)


def test_dockerfile_sets_only_variables_the_settings_read():
    assigned = set(re.findall(r"(GMM_[A-Z_]+)=", _dockerfile()))
    assert assigned and assigned <= SETTINGS_VARIABLES


def test_compose_has_postgres_migrate_api_and_a_scalable_worker():
    services = _compose()["services"]
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == {"postgres", "migrate", "api", "worker"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pgdata" in _compose()["volumes"]
    assert "container_name" not in services["worker"]  # --scale worker=N needs that
    assert "ports" not in services["worker"]


def test_compose_services_wait_for_a_healthy_database_and_run_real_commands():
    services = _compose()["services"]
    for name in ("migrate", "api", "worker"):
        service = services[name]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        program, command, *_ = service["command"]
        assert program == "gmm-service" and command in main.commands
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--no-embedded-worker" in services["api"]["command"]


def test_compose_gives_every_service_a_healthcheck_that_fits_what_it_runs():
    # the image's HEALTHCHECK asks /healthz: right for the API, wrong for the rest
    services = _compose()["services"]
    for name in ("worker", "worker-dask"):
        assert services[name]["healthcheck"]["test"] == ["CMD", "gmm-service", "worker", "--check"]
    assert "--check" in main.commands["worker"].params[0].opts
    for name in ("migrate", "dask-worker"):
        assert services[name]["healthcheck"]["disable"] is True
    assert "8786" in " ".join(services["dask-scheduler"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_compose_publishes_the_api_on_api_port():
    assert _compose()["services"]["api"]["ports"] == ["${API_PORT:-8000}:8000"]


def test_compose_profile_dask_has_a_scheduler_workers_and_a_fit_worker_that_uses_them():
    services = _compose()["services"]
    dask = {name for name, service in services.items() if "dask" in service.get("profiles", [])}
    assert dask == {"dask-scheduler", "dask-worker", "worker-dask"}
    scheduler = "tcp://dask-scheduler:8786"
    assert services["dask-scheduler"]["command"][:2] == ["dask", "scheduler"]
    assert services["dask-worker"]["command"][:3] == ["dask", "worker", scheduler]
    assert services["worker-dask"]["environment"]["GMM_DASK_SCHEDULER"] == scheduler
    assert "GMM_DASK_SCHEDULER" not in services["worker"]["environment"]
    for name in dask:  # the Dask workers import service.gmm: the image with the dask extra
        assert "dask" in services[name]["build"]["args"]["EXTRAS"].split(",")


def test_the_compose_stack_builds_the_image_that_reads_parquet_and_csv_imports():
    services = _compose()["services"]
    for name in ("migrate", "api", "worker", "dask-worker", "worker-dask"):
        assert "imports" in services[name]["build"]["args"]["EXTRAS"].split(","), name


def test_pyarrow_is_the_imports_extra_not_a_dependency_of_the_slim_image():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("pyarrow") for d in project["dependencies"])
    assert any(d.startswith("pyarrow") for d in project["optional-dependencies"]["imports"])


def test_compose_sets_only_variables_the_settings_read():
    for service in ("migrate", "api", "worker", "worker-dask"):
        environment = _compose()["services"][service]["environment"]
        assert set(environment) <= SETTINGS_VARIABLES


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in SETTINGS_VARIABLES if f"`{v}`" not in readme)
    assert not missing, f"README's configuration table lacks {missing}"


def test_ci_builds_and_runs_the_image_after_the_tests():
    run = (ROOT / ".ci" / "run").read_text().splitlines()
    assert run.index("make image-test") > run.index("make test")
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/image-test.sh build" in makefile and "scripts/image-test.sh test" in makefile
