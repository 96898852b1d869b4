"""Browser fixtures: Debian's Chromium driven by Playwright, and one real flowdeck server
(DuckDB) seeded through the public API, shared by the browser tests of a session.
Without Chromium, Playwright or the built front-end files the browser tests skip locally
and fail in CI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from flowdeck.web.chromium import CHROMIUM, CHROMIUM_ARGS
from flowdeck.web.templating import STATIC
from tests.conftest import need
from tests.servers import ServerProcess
from tests.web.seed import seed

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (STATIC / "vendor" / "htmx.min.js").is_file():
        need("the dashboard's front-end packages are not built (scripts/build-ui)")
    db = tmp_path_factory.mktemp("ui") / "flowdeck.duckdb"
    server = ServerProcess("serve", "--db", f"duckdb://{db}").wait_healthy()
    try:
        seed(server.base)
        yield server.base
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("Playwright is not installed (scripts/setup --dev)")
        raise
    if not os.access(CHROMIUM, os.X_OK):
        need(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, ui_server: str) -> Iterator[Page]:
    context = browser.new_context(
        base_url=ui_server, viewport={"width": 1440, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
