"""Incidents in a real browser against a real server: a flow's queue overflows, detection
opens an incident, the list and the incident's page show it, and both follow it live (over
the stream) as it recovers and closes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.flows.conftest import series
from tests.servers import threaded_server
from tests.web.conftest import browser

__all__ = ["browser"]
pytestmark = pytest.mark.slow


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FLOWDECK_INCIDENT_TICK_SECONDS", "0.5")
    monkeypatch.setenv("FLOWDECK_INCIDENT_HOLD_SECONDS", "1")
    monkeypatch.setenv("FLOWDECK_INCIDENT_CALM_SECONDS", "3")
    with threaded_server(f"duckdb://{tmp_path / 'flowdeck.duckdb'}") as url:
        body = {
            "title": "Market signals",
            "stages": [
                {"name": "ingest", "queue_capacity": 100},
                {"name": "enrich", "queue_capacity": 1000, "capacity_per_s": 5},
            ],
        }
        assert httpx2.put(f"{url}/api/v1/flows/ms", json=body, timeout=30).status_code == 201
        yield url


def report(base: str, enrich_queue: float) -> None:
    now = datetime.now(UTC).timestamp()
    minute = [now - 60 + i for i in range(60)]
    points = [
        series("flow.arrivals", minute, [10] * 60, stage="ingest"),
        series("flow.processed", minute, [10] * 60, stage="ingest"),
        series("flow.queue_depth", [now - 0.5], [4], stage="ingest"),
        series("flow.arrivals", minute, [10] * 60, stage="enrich"),
        series("flow.processed", minute, [4] * 60, stage="enrich"),
        series("flow.queue_depth", [now - 0.5], [enrich_queue], stage="enrich"),
    ]
    answer = httpx2.post(f"{base}/api/v1/metrics/points", json=points, timeout=30)
    assert answer.status_code == 200, answer.text


def wait_for(base: str, state: str, reading: str = "", timeout: float = 20.0) -> dict[str, Any]:
    """The newest incident once it is in ``state`` and its reading holds ``reading`` (an
    incident opened on an earlier report takes the next one at a later tick)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = httpx2.get(f"{base}/api/v1/incidents", timeout=30).json()["items"]
        if items and items[0]["state"] == state and reading in items[0]["reading"]:
            found: dict[str, Any] = items[0]
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {state} incident reading {reading!r} within {timeout} s")


def test_an_incident_opens_shows_and_closes_live(browser: Browser, base: str) -> None:
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
    page: Page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    try:
        page.goto("/incidents")
        expect(page.locator(".inc-none")).to_contain_text("No open incident")
        report(base, 2600)
        time.sleep(1.2)
        report(base, 2700)
        incident = wait_for(base, "open", reading="2,700 events wait")
        # The list hears of it over the stream, without a reload.
        item = page.locator(f"[data-incident='{incident['id']}']")
        expect(item).to_contain_text("Queue overflow at enrich", timeout=10_000)
        expect(item.locator(".inc-open")).to_contain_text("Open")
        item.get_by_role("link", name="Queue overflow at enrich").click()
        expect(page).to_have_url(f"{base}/incidents/{incident['id']}")
        expect(page.locator("h1")).to_contain_text("Queue overflow at enrich")
        summary = page.locator(".inc-summary")
        expect(summary).to_contain_text("2,700 events wait at enrich")
        expect(summary).to_contain_text("enrich is the bottleneck")
        expect(summary.get_by_role("link", name="Open the live flow of ms")).to_have_attribute(
            "href", "/flows/ms"
        )
        # The queue drains: the page follows it to recovering, then closed.
        report(base, 100)
        expect(page.locator(".badges .inc-recovering")).to_be_visible(timeout=10_000)
        for _ in range(4):
            time.sleep(1)
            report(base, 50)
        expect(page.locator(".badges .inc-closed")).to_be_visible(timeout=10_000)
        expect(page.locator("ol.inc-timeline li").first).to_contain_text("Closed")
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"
