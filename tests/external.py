"""Tests that need a program this repository does not install itself.

In CI (``GMM_CI=1``, set by ``.ci/run``, which installs them) a missing tool is a
failure; elsewhere the test is skipped with a reason that says what to install.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["IN_CI", "require", "require_program"]

IN_CI = os.environ.get("GMM_CI") == "1"


def require(available: bool, what: str) -> None:
    """Fail in CI, skip visibly elsewhere, unless ``available``."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI (.ci/run installs it) but is missing")
    pytest.skip(f"{what} is missing: test skipped (CI installs it and runs it)")


def require_program(name: str, install_hint: str) -> str:
    """The path of program ``name``; fail in CI or skip when it is not on PATH."""
    path = shutil.which(name)
    require(path is not None, f"{name} ({install_hint})")
    assert path is not None
    return path
