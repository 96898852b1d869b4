"""The SLO pages in Chromium, on a server of their own (its failing SLOs stay out of the
shared server's incidents): the list, the chart of one SLO drawn by ECharts, the range
picker, and no sideways scrolling on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from flowdeck.web.templating import STATIC
from tests.conftest import need
from tests.servers import threaded_server
from tests.slo.seed import seed

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def slo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (STATIC / "vendor" / "echarts.min.js").is_file():
        need("the dashboard's front-end packages are not built (scripts/build-ui)")
    db = tmp_path_factory.mktemp("slo-ui") / "flowdeck.duckdb"
    with threaded_server(f"duckdb://{db}") as base:
        seed(base)
        yield base


@pytest.mark.parametrize("width", [1440, 390])
def test_slo_list_and_chart(browser: Browser, slo_server: str, width: int) -> None:
    context = browser.new_context(base_url=slo_server, viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[object] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto("/slos")
        cards = page.locator("li.slo-card")
        assert cards.count() == 4
        latency = page.locator("li.slo-card", has_text="signals-latency")
        assert latency.locator(".badge").first.inner_text().split()[:2] == ["✕", "Failing"]
        assert "left" in latency.locator(".budget-text").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.get_by_role("link", name="signals-latency").click()
        page.wait_for_url("**/slos/signals-latency")
        chart = page.locator("[data-slo-chart='sli'] canvas")
        chart.wait_for()
        assert chart.bounding_box() is not None
        assert page.locator("[data-slo-chart='units'] canvas").count() == 1
        page.get_by_role("link", name="24 hours").click()
        page.wait_for_url("**/slos/signals-latency?range=24h")
        assert "per 15 min" in page.locator("#history-h").inner_text()
        page.locator("[data-slo-chart='sli'] canvas").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
