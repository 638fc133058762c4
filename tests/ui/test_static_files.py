"""The console's files ship in the package and name their third-party sources."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from fastapi.testclient import TestClient

from service.ui import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_every_static_file_is_package_data_so_a_plain_pip_install_ships_it():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["service.ui"]
    files = [
        p.relative_to(STATIC_DIR.parent).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()
    ]
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in patterns)]
    assert files and not missing


def test_every_vendored_folder_keeps_its_license_and_is_named_in_the_notice():
    notice = (STATIC_DIR / "vendor" / "NOTICE").read_text()
    for folder in (p for p in (STATIC_DIR / "vendor").iterdir() if p.is_dir()):
        assert (folder / "LICENSE").is_file()
        assert f"{folder.name}/" in notice


def test_ui_and_docs_are_served_but_stay_out_of_the_openapi_document(client: TestClient):
    assert client.get("/ui").headers["content-type"].startswith("text/html")
    docs = client.get("/docs").text
    assert "/ui/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs and "cdn" not in docs
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/ui", "/docs")) for p in paths)


def test_static_paths_cannot_climb_out_of_the_static_folder(client: TestClient):
    assert client.get("/ui/static/../__init__.py").status_code == 404
    assert client.get("/ui/static/%2e%2e/__init__.py").status_code == 404
