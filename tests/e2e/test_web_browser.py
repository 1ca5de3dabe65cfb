"""The web page in a real browser: headless Chromium fills the contract-generated form, the
request goes through the local HTTP API to the web function, and the answer is shown."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.http_api import HttpApiServer, serve_http_api
from mlops.contract import load_contract
from mlops.web import endpoint, fields
from tests.unit.test_web_api import FakeRuntime, deploy_model

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
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
SCREENSHOTS = Path(os.environ.get("WEB_SCREENSHOT_DIR", "/tmp"))
ROOT = Path(__file__).resolve().parents[2]


class WebCloud:
    """The slice of LocalCloud the HTTP API needs, invoking the real web handler in-process."""

    project_root = ROOT
    account_id = "123456789012"
    parameters = {"Stage": "dev"}
    resources: dict[str, str] = {}

    def __init__(self, context: Any) -> None:
        from functions.web.app import lambda_handler

        self._handler = lambda_handler
        self._context = context

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        return self._handler(event, self._context)


@pytest.fixture
def site(
    aws: None, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[HttpApiServer, FakeRuntime]]:
    endpoint.clear_cache()
    fields.clear_cache()
    runtime = FakeRuntime()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    deploy_model(version="3", trained_at="2026-11-27T08:05:00+00:00")
    try:
        with serve_http_api(WebCloud(lambda_context)) as api:
            yield api, runtime
    finally:
        runtime.stop()
        # The web module caches what the endpoint serves, as a warm Lambda would: forget it.
        endpoint.clear_cache()
        fields.clear_cache()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium missing: make test installs it (tools/ensure-chromium.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def fill(page: Any, row: dict[str, Any]) -> None:
    for name, value in row.items():
        field = page.locator(f"[name='{name}']")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option("" if value is None else str(value))
        else:
            field.fill("" if value is None else str(value))


def test_filling_the_form_shows_the_prediction_and_the_model_version(
    site: tuple[HttpApiServer, FakeRuntime], browser: Any, event: Any
) -> None:
    api, runtime = site
    row = json.loads(event("http_post_predictions.json")["body"])
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(api.stage_url)
    # A selector, not a JavaScript predicate: the page's CSP refuses eval, which
    # wait_for_function needs whenever its first check is not already true.
    page.wait_for_selector("#model-version >> text='3'")

    fill(page, row)
    page.click("button[type=submit]")
    page.wait_for_selector("#result:not([hidden])")
    page.screenshot(path=str(SCREENSHOTS / "web_prediction.png"), full_page=True)

    shown = page.text_content("#prediction").replace(",", "")
    assert float(shown) == pytest.approx(1000.0 + row["mileage"] / 10)
    assert page.text_content("#result-version") == "3"
    assert page.text_content("#result-trained") == "2026-11-27T08:05:00+00:00"
    assert runtime.requests[0][1][0] == {k: row.get(k) for k in load_contract("used_cars").features}


def test_invalid_input_shows_the_field_errors_next_to_the_fields(
    site: tuple[HttpApiServer, FakeRuntime], browser: Any, event: Any
) -> None:
    api, runtime = site
    contract = load_contract("used_cars")
    ranged = next(n for n in contract.features if contract.columns[n].max is not None)
    needed = next(n for n in contract.features if contract.columns[n].required and n != ranged)
    row = json.loads(event("http_post_predictions.json")["body"])
    row |= {ranged: contract.columns[ranged].max + 1, needed: None}
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(api.stage_url)

    fill(page, row)
    page.click("button[type=submit]")
    page.wait_for_selector(f"#error-{ranged}:not(:empty)")
    page.screenshot(path=str(SCREENSHOTS / "web_invalid.png"), full_page=True)

    assert f"{contract.columns[ranged].max:g}" in page.text_content(f"#error-{ranged}")
    assert page.text_content(f"#error-{needed}") == "is required"
    assert page.get_attribute(f"[name='{ranged}']", "aria-invalid") == "true"
    assert page.is_hidden("#result")
    assert runtime.requests == []
