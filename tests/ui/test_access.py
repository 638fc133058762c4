"""The console with API keys on: it asks for a key and sends it."""

from __future__ import annotations

import pytest

from tests.ui.conftest import API_KEY

# One worker runs the browser modules in turn (see test_console.py).
pytestmark = pytest.mark.xdist_group("ui-browser")


def test_the_console_asks_for_a_key_on_401_and_uses_it_for_every_call(page, keyed_server):
    page.watch.expect_http_error(401, "/v1/datasets")
    page.watch.expect_http_error(401, "/v1/models")
    page.goto(f"{keyed_server}/ui")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.fill("#key-input", API_KEY)
    page.click("#key-save")
    page.click("#new-model summary")
    page.fill("#m-name", "with-a-key")
    page.click("text=Create model")
    page.wait_for_selector("#model-table tbody tr:has-text('with-a-key')")
    assert page.evaluate("sessionStorage.getItem('gmm-service.api-key')") == API_KEY
    assert not dialog.is_visible()


def test_with_a_key_uploads_and_the_live_job_stream_carry_it(page, keyed_server):
    page.watch.expect_http_error(401, "/v1/datasets")
    page.watch.expect_http_error(401, "/v1/models")
    page.watch.expect_http_error(404, "/versions")  # until the versions routes land
    page.goto(f"{keyed_server}/ui")
    page.locator("#key-dialog").wait_for(state="visible")
    page.fill("#key-input", API_KEY)
    page.click("#key-save")
    rows = "\n".join(f"{i % 7},{(i * 3) % 11}" for i in range(300))
    page.set_input_files(
        "#file-input",
        files=[{"name": "keyed.csv", "mimeType": "text/csv", "buffer": rows.encode()}],
    )
    page.wait_for_selector("#detail-title:has-text('Dataset keyed')")
    page.click("#new-model summary")
    page.fill("#m-k", "2")
    page.click("text=Create model")
    page.wait_for_selector("#fit-button:not([disabled])")
    page.click("#fit-button")
    page.wait_for_selector("[data-testid=job-status]:has-text('succeeded')")
    page.wait_for_selector("[data-testid=model-scatter] path.ellipse[data-sigma='1']")
