"""The live pipeline page in a real browser: it draws the declared stages from reported
points, then updates in place (no reload) when new points arrive, lights and numbers
included, and draws its trend charts."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.slow


def post_points(base: str, pipeline: str, items: list[dict[str, Any]]) -> None:
    for item in items:
        item["tags"]["pipeline"] = pipeline
    answer = httpx2.post(f"{base}/api/v1/metrics/points", json=items, timeout=30)
    assert answer.status_code == 200, answer.text


def minute(name: str, per_second: float, **tags: str) -> dict[str, Any]:
    # As the SDK sends counters: at whole seconds, the newest the current one.
    now = int(time.time())
    times = list(range(now - 59, now + 1))
    return {"name": name, "tags": dict(tags), "times": times, "values": [per_second] * 60}


def gauge(name: str, value: float, **tags: str) -> dict[str, Any]:
    return {"name": name, "tags": dict(tags), "time": time.time(), "value": value}


def test_live_page_updates_as_points_arrive(page: Page, ui_server: str) -> None:
    pipeline = f"live_{uuid.uuid4().hex[:8]}"
    declared = httpx2.put(
        f"{ui_server}/api/v1/flows/{pipeline}",
        json={
            "title": "Browser flow",
            "stages": [
                {"name": "ingest", "queue_capacity": 1000},
                {"name": "enrich", "queue_capacity": 1000, "capacity_per_s": 20},
                {"name": "store"},
            ],
            "signals": ["sales_activity"],
        },
        timeout=30,
    )
    assert declared.status_code == 201, declared.text
    post_points(
        ui_server,
        pipeline,
        [
            minute("flow.arrivals", 10, stage="ingest"),
            minute("flow.processed", 10, stage="ingest"),
            minute("flow.arrivals", 10, stage="enrich"),
            minute("flow.processed", 10, stage="enrich"),
            minute("flow.arrivals", 10, stage="store"),
            minute("flow.processed", 10, stage="store"),
            gauge("flow.queue_depth", 12, stage="enrich"),
            minute("flow.events", 10, signal="sales_activity"),
            gauge("flow.e2e_latency_ms", 420, signal="sales_activity"),
        ],
    )
    page.goto(f"/flows/{pipeline}")
    enrich = page.locator("[data-stage='enrich']")
    expect(page.locator("#flow-light")).to_have_attribute("data-light", "green")
    expect(enrich.locator(".queue-depth")).to_have_text("12")
    expect(enrich.locator(".rate-out")).to_have_text("10.0/s")
    expect(page.locator("#kpi-speed")).to_have_text("10.0/s")
    expect(page.locator(".stage")).to_have_count(3)
    expect(page.locator(".stage-arrow")).to_have_count(2)
    # The trend charts are drawn (ECharts, SVG renderer).
    expect(page.locator("[data-trend='rates'] svg")).to_have_count(1)
    page.evaluate("window.__sameDocument = true")

    # Pressure builds at enrich: its queue fills.
    post_points(ui_server, pipeline, [gauge("flow.queue_depth", 950, stage="enrich")])
    expect(enrich.locator(".queue-depth")).to_have_text("950", timeout=15_000)
    expect(enrich).to_have_attribute("data-light", "red")
    expect(page.locator("#flow-light")).to_have_attribute("data-light", "red")
    expect(page.locator("#flow-bottleneck")).to_have_text("enrich")
    expect(page.locator("#flow-reasons")).to_contain_text("enrich: queue 95 % full")
    expect(page.locator("#flow-status")).to_have_attribute("data-state", "live")
    assert page.evaluate("window.__sameDocument") is True  # updated in place, not reloaded

    # The list shows it with its light, and keeps itself fresh (htmx, every 5 s).
    page.goto("/flows")
    card = page.locator(f"[data-flow='{pipeline}']")
    expect(card).to_have_attribute("data-light", "red")
    expect(card.locator(".mini-stages li:not(.sep)")).to_have_count(3)
    post_points(ui_server, pipeline, [gauge("flow.queue_depth", 0, stage="enrich")])
    expect(card).to_have_attribute("data-light", "green", timeout=15_000)


def test_live_page_says_when_it_cannot_update(page: Page, ui_server: str) -> None:
    pipeline = f"gone_{uuid.uuid4().hex[:8]}"
    url = f"{ui_server}/api/v1/flows/{pipeline}"
    assert httpx2.put(url, json={"stages": [{"name": "a"}]}, timeout=30).status_code == 201
    page.goto(f"/flows/{pipeline}")
    expect(page.locator("#flow-status")).to_have_attribute("data-state", "live")
    assert httpx2.delete(url, timeout=30).status_code == 204
    status = page.locator("#flow-status")
    expect(status).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    expect(status).to_contain_text("Could not update (HTTP 404)")
    expect(page.locator("[data-stage='a']")).to_be_visible()  # the last state stays
