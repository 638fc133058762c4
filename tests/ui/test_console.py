"""The console at /ui, used as a person uses it, in Debian's Chromium.

Each test sets up what it needs through the REST API, then drives the page and
asserts on the DOM.
"""

from __future__ import annotations

import io
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest

from tests.conftest import TERMINAL
from tests.ui.conftest import LOOPBACK

# One worker runs the browser modules in turn (pytest-xdist): a Chromium and a server per
# module, not per module per worker, and no two Chromiums racing for the CPU.
pytestmark = pytest.mark.xdist_group("ui-browser")

TIMES = "\N{MULTIPLICATION SIGN}"


def blobs_csv(n: int = 1500, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 1.0], [0.0, 5.0, -1.0]])
    X = centres[rng.integers(0, 3, n)] + rng.normal(scale=0.7, size=(n, 3))
    out = io.StringIO()
    out.write("a,b,c\n")
    np.savetxt(out, X, delimiter=",", fmt="%.6f")
    return out.getvalue().encode()


def fitted_model(server: str, k: int = 3) -> str:
    with httpx.Client(base_url=server) as api:
        dataset = api.post(
            "/v1/datasets?name=blobs", content=blobs_csv(), headers={"Content-Type": "text/csv"}
        ).json()
        model = api.post("/v1/models", json={"n_components": k, "random_state": 0}).json()
        job = api.post(f"/v1/models/{model['id']}/fit", json={"dataset_id": dataset["id"]}).json()
        deadline = time.monotonic() + 60
        while api.get(f"/v1/jobs/{job['id']}").json()["status"] not in TERMINAL:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return model["id"]


def open_console(page, server: str, fragment: str = "") -> None:
    page.goto(f"{server}/ui{fragment}")
    page.wait_for_selector("#dataset-table")


@pytest.mark.alone
def test_the_first_load_is_under_300_ms_and_500_kb(browser, server):
    # Playwright's request interception costs tens of ms per request, so this test
    # watches requests instead of routing them. Each load is a first load (a fresh
    # context, empty cache); the best of three keeps other processes' noise out.
    loads, outside = [], []
    for _ in range(3):
        context = browser.new_context()
        page = context.new_page()
        page.on(
            "request", lambda r: urlsplit(r.url).hostname not in LOOPBACK and outside.append(r.url)
        )
        page.goto(f"{server}/ui")
        page.wait_for_selector("#dataset-table")
        page.wait_for_load_state("networkidle")
        loads.append(page.evaluate(FIRST_LOAD))
        context.close()
    best = min(loads, key=lambda t: t["ms"])
    print(
        f"first load: {best['ms']:.0f} ms (of {[round(t['ms']) for t in loads]}), "
        f"{best['bytes'] / 1024:.0f} KB in {best['count']} requests"
    )
    assert not outside
    assert best["ms"] < 300
    assert 0 < best["bytes"] < 500 * 1024


FIRST_LOAD = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  return { ms: nav.loadEventEnd - nav.startTime,
           bytes: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
           count: resources.length + 1 };
}"""


def test_a_csv_dropped_on_the_page_is_uploaded_with_progress_and_previewed(page, server):
    open_console(page, server)
    body = blobs_csv(800).decode()
    handle = page.evaluate_handle(
        """(text) => { const t = new DataTransfer();
             t.items.add(new File([text], "dropped.csv", {type: "text/csv"})); return t; }""",
        body,
    )
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": handle})
    page.wait_for_selector("#detail-title:has-text('Dataset dropped')")
    assert page.locator("#upload-progress").get_attribute("value") == "100"
    assert f"800 rows {TIMES} 3 features" in page.locator("#detail").inner_text()
    row = page.locator("#dataset-table tbody tr", has_text="dropped")
    assert f"800 {TIMES} 3" in row.inner_text()
    assert (
        page.locator("[data-testid=dataset-scatter] canvas").get_attribute("data-point-count")
        == "800"
    )


def test_a_csv_chosen_with_the_file_input_is_uploaded(page, server):
    open_console(page, server)
    page.set_input_files(
        "#file-input",
        files=[{"name": "chosen.csv", "mimeType": "text/csv", "buffer": blobs_csv(300)}],
    )
    page.wait_for_selector("#detail-title:has-text('Dataset chosen')")
    assert f"300 rows {TIMES} 3 features" in page.locator("#detail").inner_text()


def test_the_form_creates_a_model_with_scikit_learns_defaults(page, server):
    open_console(page, server)
    page.click("#new-model summary")
    assert page.input_value("#m-tol") == "0.001" and page.input_value("#m-iter") == "100"
    page.fill("#m-name", "from-the-form")
    page.fill("#m-k", "3")
    page.select_option("#m-cov", "diag")
    page.click("text=Create model")
    page.wait_for_selector("#detail-title:has-text('Model from-the-form')")
    row = page.locator("#model-table tbody tr", has_text="from-the-form")
    assert row.locator("td").nth(1).inner_text() == "new"
    assert row.locator("td").nth(4).inner_text() == "diag"


def test_a_running_fit_draws_its_lower_bound_live_and_can_be_cancelled(page, server):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20000, 2)) + rng.integers(0, 4, (20000, 1)) * 3.0
    with httpx.Client(base_url=server) as api:
        api.post("/v1/datasets?name=slow", json={"data": X.tolist()})
        model = api.post(
            "/v1/models",
            json={
                "name": "slow",
                "n_components": 6,
                "tol": 0,
                "max_iter": 10000,
                "random_state": 0,
            },
        ).json()
    open_console(page, server, f"#/models/{model['id']}")
    page.select_option(
        "#fit-dataset", label=page.locator("#fit-dataset option", has_text="slow").inner_text()
    )
    page.click("#fit-button")
    chart = page.locator("[data-testid=lower-bound-chart]")
    chart.wait_for()
    page.wait_for_function(
        "document.querySelector('[data-testid=lower-bound-chart]').dataset.points >= 2"
    )
    before = int(chart.get_attribute("data-points"))
    page.wait_for_function(
        f"document.querySelector('[data-testid=lower-bound-chart]').dataset.points > {before}"
    )
    assert page.locator("[data-testid=job-status]").inner_text() == "running"
    assert chart.locator("canvas").count() >= 1  # uPlot drew it
    page.click("#cancel-button")
    page.wait_for_selector("[data-testid=job-status]:has-text('cancelled')")
    assert page.locator("#cancel-button").is_disabled()


def test_a_fitted_model_shows_one_ellipse_per_component_and_the_score_histogram(page, server):
    model_id = fitted_model(server, k=3)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=score-histogram] svg")
    scatter = page.locator("[data-testid=model-scatter]")
    assert scatter.locator("canvas").get_attribute("data-point-count") == "2000"
    assert scatter.locator("path.ellipse[data-sigma='1']").count() == 3
    assert scatter.locator("path.ellipse[data-sigma='2']").count() == 3
    histogram = page.locator("[data-testid=score-histogram]")
    assert histogram.locator("rect.bar").count() == 40
    assert histogram.locator("line.threshold").count() == 1
    assert histogram.locator("rect.bar.flagged").count() >= 1
    assert int(scatter.locator("canvas").get_attribute("data-flagged-count")) > 0
    assert page.locator("[data-testid=parameters-table] tbody tr").count() == 3
    page.wait_for_selector("[data-testid=versions-unavailable], [data-testid=versions-table]")


def test_changing_the_features_redraws_the_ellipses_on_them(page, server):
    model_id = fitted_model(server, k=3)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=model-scatter] path.ellipse")
    first = page.locator("path.ellipse").first.get_attribute("d")
    page.locator("#fitted select").nth(1).select_option("2")
    page.wait_for_function(
        f"document.querySelector('path.ellipse').getAttribute('d') !== {first!r}"
    )
    assert "feature 2" in page.locator("[data-testid=model-scatter] svg").text_content()


@pytest.mark.alone
def test_ten_thousand_points_draw_and_redraw_while_the_page_stays_interactive(page, server):
    model_id = fitted_model(server, k=3)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=model-scatter] canvas[data-point-count='2000']")
    page.fill("#sample-size", "10000")
    page.click("#resample-button")
    scatter = page.locator("[data-testid=model-scatter]")
    page.wait_for_selector("[data-testid=model-scatter] canvas[data-point-count='10000']")
    draw_ms = [float(scatter.get_attribute("data-draw-ms"))]
    # From a change of feature to the next painted frame, as a person would feel it. Each
    # change draws the 10,000 points again; the best of three, as for the first load: the
    # suite runs on two processes (pytest-xdist), and one draw can lose the CPU to the other.
    redraw_ms = []
    for feature in ("2", "0", "2"):
        redraw_ms.append(
            page.evaluate(
                """(feature) => new Promise((resolve) => {
                     const select = document.querySelectorAll('#fitted select')[0];
                     const start = performance.now();
                     select.value = feature;
                     select.dispatchEvent(new Event('change'));
                     requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - start)));
                   })""",
                feature,
            )
        )
        canvas = scatter.locator("canvas[data-point-count='10000']")
        assert canvas.get_attribute("aria-label").startswith(f"10000 points, feature {feature} ")
        draw_ms.append(float(scatter.get_attribute("data-draw-ms")))
    print(
        f"10,000 points: drawn in {min(draw_ms):.1f} ms (of {draw_ms}), "
        f"feature change to frame {min(redraw_ms):.1f} ms (of {[round(t) for t in redraw_ms]})"
    )
    assert min(draw_ms) < 200
    assert min(redraw_ms) < 250


def test_the_docs_list_every_operation_from_files_the_service_serves(page, server):
    document = httpx.get(f"{server}/openapi.json").json()
    operations = sum(len(item) for item in document["paths"].values())
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock")
    page.wait_for_function(f"document.querySelectorAll('.opblock').length === {operations}")
    assert page.locator(".opblock").count() == operations
    assert page.locator(".opblock-summary-path").first.inner_text().startswith("/")


def test_a_selection_the_server_refuses_shows_the_problems_detail(page, server):
    model_id = fitted_model(server, k=2)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/select")
    problem = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such route",
    }
    page.route(
        f"**/v1/models/{model_id}/select",
        lambda r: r.fulfill(status=404, json=problem, content_type="application/problem+json"),
    )
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=model-scatter] canvas")
    page.click("#select-button")
    page.wait_for_selector("[data-testid=action-error]:has-text('404: no such route')")


def route_exists(server: str, path: str) -> bool:
    return path in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_a_selection_started_from_the_page_ends_with_bic_and_aic_by_k(page, server):
    if not route_exists(server, "/v1/models/{model_id}/select"):
        pytest.skip("POST /v1/models/{id}/select is not on this branch yet")
    model_id = fitted_model(server, k=2)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=model-scatter] canvas")
    page.fill("#select-kmax", "3")
    page.click("#select-button")
    page.wait_for_selector("[data-testid=job-status]:has-text('succeeded')", timeout=60_000)
    page.wait_for_selector("[data-testid=selection-aic] canvas")
    legend = page.locator("[data-testid=selection-bic] .u-legend").inner_text()
    assert all(t in legend for t in ("full", "tied", "diag", "spherical"))


def test_activating_an_older_version_makes_it_the_active_one(page, server):
    if not route_exists(server, "/v1/models/{model_id}/versions"):
        pytest.skip("GET /v1/models/{id}/versions is not on this branch yet")
    model_id = fitted_model(server, k=2)
    with httpx.Client(base_url=server) as api:
        dataset_id = api.get(f"/v1/models/{model_id}").json()["fit_summary"]["dataset_id"]
        job = api.post(f"/v1/models/{model_id}/fit", json={"dataset_id": dataset_id}).json()
        while api.get(f"/v1/jobs/{job['id']}").json()["status"] not in TERMINAL:
            time.sleep(0.05)
    open_console(page, server, f"#/models/{model_id}")
    table = page.locator("[data-testid=versions-table]")
    table.wait_for()
    assert table.locator("tbody tr").count() == 2
    page.click("text=Activate 1")
    page.wait_for_selector("#notice:has-text('Version 1 is active')")
    page.wait_for_selector("[data-testid=versions-table] tbody tr:has-text('1 (active)')")
    assert httpx.get(f"{server}/v1/models/{model_id}").json()["active_version"] == 1


# The routes below land from other issues (DESIGN.md "Contract, part 2"); until then
# the page is checked against answers shaped as the contract says.


def test_versions_are_listed_and_an_inactive_one_can_be_activated(page, server):
    model_id = fitted_model(server, k=2)
    activated = []
    versions = {
        "items": [
            {"version": v, "active": v == 2, "created_at": "2026-11-22T05:02:29Z",
             "job_id": f"job_{v}", "dataset_id": "ds_1", "dataset_sha256": "0" * 64,
             "config": {}, "fit_summary": {"lower_bound": -4.2 + v}, "anomaly_threshold": 8.0,
             "source": "fit"}
            for v in (2, 1)
        ],
        "next_cursor": None,
    }  # fmt: skip
    page.route(f"**/v1/models/{model_id}/versions", lambda r: r.fulfill(json=versions))

    def activate(route):
        activated.append(route.request.post_data_json)
        route.fulfill(json=httpx.get(f"{server}/v1/models/{model_id}").json())

    page.route(f"**/v1/models/{model_id}/activate", activate)
    open_console(page, server, f"#/models/{model_id}")
    table = page.locator("[data-testid=versions-table]")
    table.wait_for()
    assert table.locator("tbody tr").count() == 2
    assert "(active)" in table.locator("tbody tr").first.inner_text()
    page.click("text=Activate 1")
    page.wait_for_selector("#notice:has-text('Version 1 is active')")
    assert activated == [{"version": 1}]


def test_a_model_made_by_a_selection_shows_bic_and_aic_by_k(page, server):
    model_id = fitted_model(server, k=2)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    candidates = [
        {"n_components": k, "covariance_type": t, "converged": True, "n_iter": 5,
         "log_likelihood": -1000.0 / k, "n_parameters": 5 * k, "bic": 2000 / k + 30 * k,
         "aic": 2000 / k + 10 * k, "icl": 2000 / k + 31 * k, "seconds": 0.1}
        for k in (1, 2, 3, 4) for t in ("full", "diag")
    ]  # fmt: skip
    job = {
        "id": "job_sel", "model_id": model_id, "dataset_id": "ds_1", "kind": "select",
        "status": "succeeded", "progress": {"init": 0, "n_init": 1, "iteration": 5, "max_iter": 100,
        "lower_bound": -4.0}, "lower_bound_history": [], "error": None, "attempts": 1,
        "result": {"criterion": "bic", "best": {"n_components": 2, "covariance_type": "full"},
                   "candidates": candidates},
        "created_at": "2026-11-22T05:02:29Z", "started_at": "2026-11-22T05:02:29Z",
        "finished_at": "2099-11-22T05:02:30Z",
    }  # fmt: skip

    def jobs(route):
        listed = httpx.get(f"{server}/v1/jobs", params={"model_id": model_id}).json()
        route.fulfill(json={"items": [job, *listed["items"]], "next_cursor": None})

    page.route(f"**/v1/jobs?model_id={model_id}*", jobs)
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=selection-aic] canvas")
    assert "K = 2, full" in page.locator("#detail").inner_text()
    legend = page.locator("[data-testid=selection-bic] .u-legend").inner_text()
    assert "full" in legend and "diag" in legend


def test_every_control_has_a_label_and_the_file_chooser_is_reachable_by_keyboard(page, server):
    model_id = fitted_model(server, k=2)
    page.watch.expect_http_error(404, f"/v1/models/{model_id}/versions")
    open_console(page, server, f"#/models/{model_id}")
    page.wait_for_selector("[data-testid=parameters-table]")
    page.click("#new-model summary")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')]
             .filter((c) => !c.labels?.length && !c.getAttribute('aria-label'))
             .map((c) => c.outerHTML)"""
    )
    assert unlabelled == []
    page.focus("a.skip")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    assert page.evaluate("document.activeElement.id") == "file-input"
