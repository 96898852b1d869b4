"""Dashboards in a real browser: the builder (add a widget, move it, resize it, save, reload),
live refresh from the stream and the interval, the per-browser home page, export and import
through the pages, and the print layout."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.slow

API = "/api/v1/dashboards"


def create(base: str, **extra: Any) -> dict[str, Any]:
    body = {"title": f"Test {uuid.uuid4().hex[:6]}", "refresh": "off", "widgets": []}
    body.update(extra)
    answer = httpx2.post(f"{base}{API}", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def stored(base: str, dashboard_id: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx2.get(f"{base}{API}/{dashboard_id}", timeout=30).json()
    return got


def drag(page: Page, source: str, dx: float, dy: float) -> None:
    handle = page.locator(source)
    # gridstack shows a resize handle while the pointer is over its widget, and builds the
    # handles again after a drop: hover the widget and wait for the handle to be there.
    handle.locator("xpath=ancestor::*[contains(@class, 'grid-stack-item')][1]").hover()
    handle.wait_for(state="visible")
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(x + dx * i / steps, y + dy * i / steps)
    page.mouse.up()


def test_build_a_dashboard_add_move_resize_save_reload(page: Page, ui_server: str) -> None:
    board = create(ui_server)
    page.goto(f"/dashboards/{board['id']}")
    expect(page.locator("#board-empty")).to_be_visible()

    page.click("#board-edit")
    page.click("#board-add")
    dialog = page.locator("#widget-dialog")
    expect(dialog).to_be_visible()
    page.select_option("#wf-type", "stat")
    page.fill("#wf-title", "Runs in range")
    page.select_option("#wf-metric", "runs.count")
    page.select_option("#wf-aggregation", "count")
    page.select_option("#wf-reduce", "total")
    page.click("#wf-apply")
    expect(dialog).to_be_hidden()
    item = page.locator(".grid-stack-item[data-widget-id='w1']")
    expect(item.locator(".widget-body")).to_have_attribute("data-state", "ready")
    expect(item.locator(".stat-value")).to_have_text(re.compile(r"^[\d,]+$"))
    expect(item).to_have_attribute("gs-w", "6")

    # Move it to the right half by its title bar, then make it narrower and taller.
    grid = page.locator("#board-grid").bounding_box()
    assert grid is not None
    column = grid["width"] / 12
    drag(page, ".grid-stack-item[data-widget-id='w1'] .widget-head h2", 6.4 * column, 0)
    expect(item).to_have_attribute("gs-x", "6")
    drag(page, ".grid-stack-item[data-widget-id='w1'] .ui-resizable-se", -2 * column, 140)
    expect(item).to_have_attribute("gs-w", "4")
    expect(item).to_have_attribute("gs-h", "6")

    page.click("#board-save")
    expect(page.locator("#board-saved")).to_have_text("Saved (version 2).")
    saved = stored(ui_server, board["id"])
    assert [(w["id"], w["type"], w["title"]) for w in saved["widgets"]] == [
        ("w1", "stat", "Runs in range")
    ]
    assert saved["widgets"][0]["grid"] == {"x": 6, "y": 0, "w": 4, "h": 6}
    assert saved["widgets"][0]["query"]["metric"] == "runs.count"
    assert saved["widgets"][0]["options"]["reduce"] == "total"

    page.reload()
    item = page.locator(".grid-stack-item[data-widget-id='w1']")
    expect(item).to_have_attribute("gs-x", "6")
    expect(item).to_have_attribute("gs-w", "4")
    expect(item.locator("h2")).to_have_text("Runs in range")
    expect(item.locator(".widget-body")).to_have_attribute("data-state", "ready")
    expect(page.locator(".widget-actions").first).to_be_hidden()  # view mode again


def test_edit_then_cancel_and_an_invalid_widget_stays_in_the_dialog(
    page: Page, ui_server: str
) -> None:
    board = create(ui_server)
    page.goto(f"/dashboards/{board['id']}?edit=1")
    page.click("#board-add")
    page.fill("#wf-title", "Filtered")
    page.fill("#wf-filters", "status")  # no "=": the server names the rule
    page.click("#wf-apply")
    expect(page.locator("#wf-error")).to_have_text("widget.query.filters[0].value: is required")
    expect(page.locator("#widget-dialog")).to_be_visible()
    page.click("#wf-cancel")
    page.click("#board-add")
    page.fill("#wf-filters", "env=prod")
    page.click("#wf-apply")
    expect(page.locator(".grid-stack-item")).to_have_count(1)
    page.click("#board-cancel")
    expect(page.locator(".grid-stack-item")).to_have_count(0)
    assert stored(ui_server, board["id"])["version"] == 1


def live_run(pipeline: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "run_id": f"{pipeline}:{uuid.uuid4().hex[:8]}",
        "pipeline": pipeline,
        "batch_id": f"live-{pipeline}",
        "env": "prod",
        "status": "SUCCESS",
        "started_at": (now - timedelta(minutes=5)).isoformat(),
        "ended_at": now.isoformat(),
        "rows_read": 10,
        "rows_written": 10,
    }


def stat_board(base: str, refresh: str, query: dict[str, Any]) -> dict[str, Any]:
    widget = {
        "id": "probe",
        "type": "stat",
        "title": "Probe",
        "grid": {"x": 0, "y": 0, "w": 4, "h": 3},
        "query": query,
        "options": {"reduce": "total"},
    }
    return create(base, refresh=refresh, time_range={"last": "1h"}, widgets=[widget])


def test_a_new_run_updates_the_widget_without_a_reload(page: Page, ui_server: str) -> None:
    pipeline = f"probe_{uuid.uuid4().hex[:8]}"
    board = stat_board(
        ui_server,
        "5s",
        {
            "metric": "runs.count",
            "aggregation": "count",
            "filters": [{"tag": "pipeline", "value": pipeline}],
        },
    )
    page.goto(f"/dashboards/{board['id']}")
    body = page.locator("[data-widget-id='probe'] .widget-body")
    expect(body).to_have_attribute("data-state", "ready")
    expect(body).to_contain_text("No data in this range")
    expect(page.locator("#board-live")).to_have_attribute("data-state", "live")

    for expected in ("1", "2"):
        answer = httpx2.post(f"{ui_server}/api/v1/runs", json=[live_run(pipeline)], timeout=30)
        assert answer.status_code == 200
        expect(body.locator(".stat-value")).to_have_text(expected, timeout=20_000)
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_the_batch_widget_says_why_the_batch_has_its_health(page: Page, ui_server: str) -> None:
    widget = {
        "id": "latest",
        "type": "batch_status",
        "title": "Latest test batch",
        "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
        "options": {"env": "test"},
    }
    board = create(ui_server, time_range={"last": "24h"}, widgets=[widget])
    page.goto(f"/dashboards/{board['id']}")
    body = page.locator("[data-widget-id='latest'] .widget-body")
    expect(body).to_have_attribute("data-state", "ready")
    # The seeded test batch: 19 of 20 succeeded, one still running.
    expect(body.locator(".badge")).to_have_text(re.compile("Yellow$"))
    reason = "no failures so far, 1 still running or pending"
    expect(body.locator(".batch-reason")).to_have_text(reason)
    expect(body.locator(".mini:has(dt:text-is('Running or pending')) dd")).to_have_text("1")


def test_metric_points_show_at_the_refresh_interval_and_off_stops(
    page: Page, ui_server: str
) -> None:
    name = f"probe.points_{uuid.uuid4().hex[:8]}"
    board = stat_board(ui_server, "1s", {"metric": name, "aggregation": "sum"})
    page.goto(f"/dashboards/{board['id']}")
    body = page.locator("[data-widget-id='probe'] .widget-body")
    expect(body).to_have_attribute("data-state", "ready")
    now = datetime.now(UTC).timestamp()
    point = {"name": name, "time": now - 60, "value": 42}
    assert (
        httpx2.post(f"{ui_server}/api/v1/metrics/points", json=point, timeout=30).status_code == 200
    )
    expect(body.locator(".stat-value")).to_have_text("42", timeout=20_000)

    page.select_option("#board-refresh", "off")
    expect(page.locator("#board-live")).to_have_attribute("data-state", "off")
    expect(page).to_have_url(re.compile(r"refresh=off"))
    assert page.evaluate("() => window.location.search").endswith("refresh=off")


def test_make_a_dashboard_my_home_page(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_title(re.compile(r"^Batch "))
    page.goto("/dashboards/manager")
    page.click("#board-home")
    expect(page.locator("#board-home")).to_have_text("Stop using as my home page")
    page.goto("/")
    expect(page).to_have_title("Manager · flowdeck")
    expect(page.locator("h1")).to_have_text("Manager")
    expect(page.locator(".grid-stack-item")).to_have_count(8)
    page.get_by_role("link", name="Batches").click()
    expect(page).to_have_title(re.compile(r"^Batch "))

    page.goto("/dashboards")
    row = page.locator("tr[data-board='manager']")
    expect(row).to_contain_text("Your home page")
    row.get_by_role("button", name="Stop").click()
    page.goto("/")
    expect(page).to_have_title(re.compile(r"^Batch "))


def test_export_and_import_through_the_pages(page: Page, ui_server: str, tmp_path: Path) -> None:
    page.goto("/dashboards")
    with page.expect_download() as info:
        page.locator("tr[data-board='data-ops']").get_by_role("link", name="Export").click()
    download = info.value
    assert download.suggested_filename == "data-ops.dashboard.json"
    doc = json.loads(Path(download.path()).read_text())
    doc["title"] = "Imported Data Ops"
    upload = tmp_path / "board.json"
    upload.write_text(json.dumps(doc))
    page.set_input_files("#import-file", str(upload))
    page.click("#import-form button[type=submit]")
    expect(page.locator("h1")).to_have_text("Imported Data Ops")
    expect(page.locator(".grid-stack-item")).to_have_count(len(doc["widgets"]))

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**doc, "refresh": "2s"}))
    page.goto("/dashboards")
    page.set_input_files("#import-file", str(bad))
    page.click("#import-form button[type=submit]")
    expect(page.locator("#import-error")).to_have_text(
        "refresh: must be one of 1s, 5s, 30s, 1m, off; got '2s'"
    )


def test_print_layout_hides_controls_and_keeps_widgets_whole(page: Page) -> None:
    page.goto("/dashboards/data-ops")
    expect(page.locator(".widget-body[data-state='loading']")).to_have_count(0)
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator(".board-controls")).to_be_hidden()
    expect(page.locator(".board-toolbar")).to_be_hidden()
    styles = page.evaluate(
        "() => [...document.querySelectorAll('#board-grid > .grid-stack-item')].map(e => {"
        " const s = getComputedStyle(e); return [s.position, s.breakInside]; })"
    )
    assert {tuple(s) for s in styles} == {("relative", "avoid")}
    # The charts were redrawn for the page: each canvas fits its widget.
    fits = page.evaluate(
        "() => [...document.querySelectorAll('.chart-box')].filter(b => b.querySelector('canvas'))"
        ".every(b => b.querySelector('canvas').getBoundingClientRect().width"
        " <= b.getBoundingClientRect().width + 1)"
    )
    assert fits
    pdf = page.pdf(format="A4", landscape=True, print_background=True)
    assert pdf.startswith(b"%PDF")
