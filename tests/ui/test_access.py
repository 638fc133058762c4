"""The console with API keys on: it asks for a key and sends it."""

from __future__ import annotations

import pytest

from tests.ui.conftest import API_KEY

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


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
