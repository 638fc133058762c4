"""A real server, Debian's Chromium driven by Playwright, and a page that fails on
console errors or on any request that would leave the machine.

Screenshots go to ``$UI_ARTIFACTS_DIR`` when set (CI can keep them), else to the
test's ``tmp_path``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import serve_live
from tests.external import require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
API_KEY = "ui-test-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """An open server (no API keys), shared by a module's tests."""
    yield from serve_live(tmp_path_factory.mktemp("ui"), worker_poll_seconds=0.05)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory) -> Iterator[str]:
    """A server with API keys on; the key is ``API_KEY``."""
    yield from serve_live(
        tmp_path_factory.mktemp("ui-keys"), worker_poll_seconds=0.05, api_keys=f"ui:{API_KEY}"
    )


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module: Playwright's sync API keeps an event loop running in this
    thread while it is started, which would break asyncio.run() in later tests."""
    require(os.path.exists(CHROMIUM), f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "the playwright Python package (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def artifacts(tmp_path) -> Path:
    root = os.environ.get("UI_ARTIFACTS_DIR")
    path = Path(root) if root else tmp_path / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


class PageWatch:
    """What a page did that a test must not let pass: console errors and outside requests."""

    def __init__(self) -> None:
        self.console_errors: list[str] = []
        self.outside_requests: list[str] = []
        self.expected_http_errors: set[tuple[int, str]] = set()

    def expect_http_error(self, status: int, path: str) -> None:
        """Chromium logs every 4xx answer as a console error; allow this one."""
        self.expected_http_errors.add((status, path))

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        url = message.location.get("url", "")
        for status, path in self.expected_http_errors:
            if f"status of {status}" in text and urlsplit(url).path.endswith(path):
                return
        self.console_errors.append(f"{text} ({url})")


@pytest.fixture
def page(browser, request, artifacts) -> Iterator:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    watch = PageWatch()

    def route(route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            watch.outside_requests.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.console_errors.append(f"uncaught: {error}"))
    page.watch = watch
    yield page
    page.screenshot(path=str(artifacts / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not watch.outside_requests, f"requests left the machine: {watch.outside_requests}"
    assert not watch.console_errors, f"console errors: {watch.console_errors}"
