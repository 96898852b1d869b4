"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real
server: default selection, filters, sorting, paging, drill-down, CSV, live updates, the
polling fallback, accessibility (axe-core) and narrow screens."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.web.conftest import AXE
from tests.web.seed import LIVE_BATCH, process

pytestmark = pytest.mark.slow


def post(base: str, runs: list[dict[str, object]]) -> None:
    answer = httpx2.post(f"{base}/api/v1/runs", json=runs, timeout=30)
    assert answer.status_code == 200, answer.text


def rows(page: Page) -> list[str]:
    return page.locator("#runs-data tbody th[scope=row]").all_inner_texts()


def row(page: Page, name: str) -> Locator:
    """The table row of a process (by its exact name)."""
    return page.locator("tbody tr").filter(has=page.get_by_role("link", name=name, exact=True))


def card(page: Page, name: str) -> str:
    return page.locator(f"#batch-cards .card:has(dt:text-is('{name}')) dd").inner_text()


def test_default_selection_is_the_newest_batch(page: Page) -> None:
    page.goto("/")
    expect(page.locator("h1")).to_contain_text(f"Batch {LIVE_BATCH}")
    assert page.locator("#batch option:checked").get_attribute("value") == LIVE_BATCH
    assert page.locator("#batch option").first.get_attribute("value") == LIVE_BATCH
    assert card(page, "Processes") == "120"
    assert card(page, "Succeeded") == "100"
    assert card(page, "Failed") == "5"
    assert card(page, "Running") == "10"
    assert card(page, "Pending") == "5"
    assert card(page, "Success rate") == "83.3 %"
    assert card(page, "Processes over 1 %") == "⚠2"  # the icon is hidden from screen readers
    health = page.locator(".health-row .badge")
    expect(health).to_have_text(
        re.compile(r"Red: 5 processes failed, 15 still running or pending$")
    )
    expect(health).to_have_class(re.compile("health-red"))
    expect(page.locator(".updated")).to_have_text(re.compile(r"Updated \d+ s ago"))
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    assert len(rows(page)) == 50
    first = page.locator("#runs-data tbody tr").first
    expect(first.locator("td").nth(3)).to_have_text("00:01:00")  # duration HH:MM:SS
    expect(first.locator("td").nth(4)).to_have_text("10,000")  # rows read
    # load_003 rejects 500 of 13,000 rows: a DQ warning, flagged with an icon and text.
    warned = row(page, "load_003")
    expect(warned).to_have_class(re.compile("dq-warn"))
    expect(warned.locator(".dq-flag")).to_contain_text("500")
    expect(warned.locator(".dq-flag")).to_contain_text("over 1 %")
    running = row(page, "load_007")
    expect(running.locator("td").nth(2)).to_have_text("")  # no end while running


def test_filters_choose_the_batches(page: Page) -> None:
    page.goto("/")
    page.select_option("#env", "test")
    page.click("text=Apply filters")
    expect(page).to_have_url(re.compile(r"env=test"))
    expect(page.locator("h1")).to_contain_text("Batch T-100")
    assert page.locator("#batch option").all_inner_texts() == [
        page.locator("#batch option").first.inner_text()
    ]
    # The old dev batch (12 days ago) is only in the 30-day window.
    page.select_option("#env", "dev")
    page.click("text=Apply filters")
    expect(page.locator(".empty h2")).to_have_text("No batches in this window")
    page.select_option("#since", "30d")
    page.click("text=Apply filters")
    expect(page.locator("h1")).to_contain_text("Batch D-OLD")
    # A custom range around it, typed in the date fields the custom window shows.
    page.select_option("#since", "custom")
    day = (datetime.now(UTC) - timedelta(days=12)).date()
    page.fill("#from", (day - timedelta(days=1)).isoformat())
    page.fill("#to", (day + timedelta(days=1)).isoformat())
    page.click("text=Apply filters")
    expect(page.locator("h1")).to_contain_text("Batch D-OLD")
    expect(page).to_have_url(re.compile(r"since=custom&from=.*&to=.*&env=dev"))
    # Picking another batch from the dropdown; the link reproduces the view.
    page.goto("/?env=prod")
    options = page.locator("#batch option")
    older = options.nth(1).get_attribute("value")
    assert older is not None
    page.select_option("#batch", older)
    page.click("text=Open batch")
    expect(page.locator("h1")).to_contain_text(f"Batch {older}")
    link = page.url
    page.goto(link)
    expect(page.locator("h1")).to_contain_text(f"Batch {older}")


def test_sort_by_any_column_keeps_the_state_in_the_url(page: Page, ui_server: str) -> None:
    page.goto("/")
    page.click("#sort-duration_s")
    expect(page).to_have_url(re.compile(r"sort=duration_s&order=desc"))
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    api = httpx2.get(
        f"{ui_server}/api/v1/batches/{LIVE_BATCH}/runs",
        params={"sort": "duration_s", "order": "desc", "page_size": 50},
    ).json()
    assert rows(page) == [r["pipeline"] for r in api["items"]]
    page.click("#sort-duration_s")
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "ascending")
    expect(page).to_have_url(re.compile(r"sort=duration_s(?!.*order=desc)"))
    page.click("#sort-pipeline")
    # The table is swapped in before the URL moves: a second click before that would land
    # on the header being replaced.
    expect(page).not_to_have_url(re.compile(r"sort=duration_s"))  # by pipeline: the default
    expect(page.locator("#runs-data tbody th").first).to_have_text("load_000")
    page.click("#sort-pipeline")
    expect(page).to_have_url(re.compile(r"order=desc"))
    expect(page.locator("#runs-data tbody th").first).to_have_text("load_119")


def test_pages_page_sizes_and_status_filter(page: Page) -> None:
    page.goto("/")
    page.select_option("#page-size", "25")
    page.click("#apply-table")
    expect(page.locator("#runs-count")).to_have_text("120 processes, page 1 of 5")
    assert len(rows(page)) == 25
    page.click("#process-pages-next")
    expect(page.locator("#runs-count")).to_have_text("120 processes, page 2 of 5")
    expect(page).to_have_url(re.compile(r"page=2"))
    assert rows(page)[0] == "load_025"
    page.click("#process-pages-last")
    expect(page.locator("#runs-count")).to_have_text("120 processes, page 5 of 5")
    page.select_option("#page-size", "100")
    page.check("#status-failed")
    page.check("#status-running")
    page.click("#apply-table")
    expect(page.locator("#runs-count")).to_have_text("15 processes with status running, failed")
    statuses = page.locator("#runs-data tbody .badge").all_inner_texts()
    assert sorted({s.split()[-1] for s in statuses}) == ["Failed", "Running"]
    # The Failed card links to the failed processes.
    page.goto("/")
    page.locator("#batch-cards .card:has(dt:text-is('Failed')) a").click()
    expect(page.locator("#runs-count")).to_have_text("5 processes with status failed")
    # Back to the full list with the browser's back button.
    page.go_back()
    expect(page.locator("#runs-count")).to_have_text("120 processes, page 1 of 3")


def test_a_row_opens_the_run(page: Page) -> None:
    page.goto(f"/?batch={LIVE_BATCH}&status=FAILED")
    row(page, "load_005").locator("td").nth(4).click()  # not the link itself
    expect(page).to_have_url(re.compile(rf"/runs/{LIVE_BATCH}%3Aload_005$"))
    expect(page.locator("h1")).to_contain_text("load_005")
    expect(page.locator(".error-box pre")).to_contain_text("DataContractViolation")
    stats = page.locator("table.kv")
    expect(stats.locator("tr:has(code:text-is('sku_count')) td")).to_have_text("48,211")
    expect(page.locator("dl.fields dd").first).to_have_text(f"{LIVE_BATCH}:load_005")
    # One chart per measure, each drawn, with zoom and the PNG download in its toolbox.
    for kind in ("run-duration", "run-rows", "run-dq"):
        expect(page.locator(f"[data-chart={kind}] canvas")).to_have_count(1)
    options = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector('[data-chart=run-duration]'))"
        ".getOption()"
    )
    assert {z["type"] for z in options["dataZoom"]} == {"inside", "slider"}
    assert "saveAsImage" in options["toolbox"][0]["feature"]
    assert len(options["series"][0]["data"]) == 9  # this run and 8 days of history
    page.click("text=History as a table")
    expect(page.locator(".history tbody tr")).to_have_count(9)
    # The keyboard way: the process name is a link.
    page.goto(f"/?batch={LIVE_BATCH}")
    page.get_by_role("link", name="load_001", exact=True).focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("load_001")


def test_run_charts_mark_this_run_and_the_failed_ones(page: Page) -> None:
    # load_012 failed on day 5 (20990005); this run is its success of day 4.
    page.goto("/runs/20990004%3Aload_012")
    expect(page.locator("[data-chart=run-rows] canvas")).to_have_count(1)

    def option(kind: str) -> dict[str, Any]:
        found: dict[str, Any] = page.evaluate(
            f"() => echarts.getInstanceByDom(document.querySelector('[data-chart={kind}]'))"
            ".getOption()"
        )
        return found

    points = {p["name"]: p for p in option("run-rows")["series"][0]["data"]}
    this, failed = points.pop("20990004"), points.pop("20990005")
    assert (this["symbol"], this["itemStyle"]["color"]) == ("diamond", "#14213d")
    assert (failed["symbol"], failed["itemStyle"]["color"]) == ("emptyCircle", "#c62828")
    assert points and all("itemStyle" not in p for p in points.values())
    # Counts and durations are labelled in whole numbers: no tick between two of them.
    for kind in ("run-duration", "run-rows", "run-dq"):
        assert option(kind)["yAxis"][0]["minInterval"] == 1, kind
    # Durations tick at clock steps (2 min here), not at 200 s (00:03:20, 00:06:40).
    duration = option("run-duration")["yAxis"][0]
    assert duration["interval"] in (60, 120, 300, 600)
    assert duration["max"] % duration["interval"] == 0
    # The source's chart rings the same failed run in red (an empty circle takes its color).
    page.goto("/sources/load_012?env=prod")
    expect(page.locator("[data-chart=source-field] canvas")).to_have_count(1)
    rings = [p for p in option("source-field")["series"][0]["data"] if "itemStyle" in p]
    assert [(p["name"], p["itemStyle"]["color"]) for p in rings] == [("20990005", "#c62828")]


def test_dq_view_lists_the_offenders(page: Page) -> None:
    page.goto("/")
    page.click("text=DQ view: the processes over 1 %")
    expect(page.locator("h1")).to_contain_text(f"DQ errors in batch {LIVE_BATCH}")
    assert page.locator("tbody th").all_inner_texts() == ["load_003", "load_033"]


def test_trends_charts(page: Page) -> None:
    page.goto("/trends")
    for kind in ("trend-success", "trend-failures", "trend-duration", "trend-dq"):
        expect(page.locator(f"[data-chart={kind}] canvas")).to_have_count(1)
    options = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector('[data-chart=trend-failures]'))"
        ".getOption()"
    )
    assert len(options["xAxis"][0]["data"]) == 8  # 7 days back and today
    assert "saveAsImage" in options["toolbox"][0]["feature"]
    page.select_option("#since", "30d")
    page.click("text=Apply")
    expect(page).to_have_url(re.compile(r"/trends\?since=30d"))
    # The PNG download of a chart.
    with page.expect_download() as info:
        page.evaluate(
            "() => { const c = echarts.getInstanceByDom("
            "document.querySelector('[data-chart=trend-success]'));"
            " c.dispatchAction({type: 'takeGlobalCursor'});"
            " document.querySelector('[data-chart=trend-success]');"
            " const a = document.createElement('a'); a.download = 'chart.png';"
            " a.href = c.getDataURL({type: 'png'}); document.body.appendChild(a); a.click(); }"
        )
    path = info.value.path()
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_csv_download_has_the_filtered_rows(page: Page) -> None:
    page.goto(f"/?batch={LIVE_BATCH}&status=FAILED&sort=rows_read&order=desc")
    with page.expect_download() as info:
        page.click("#csv-link")
    download = info.value
    assert download.suggested_filename == f"batch-{LIVE_BATCH}-runs.csv"
    table = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert [r["pipeline"] for r in table] == [
        "load_101",
        "load_077",
        "load_053",
        "load_029",
        "load_005",
    ]
    assert {r["status"] for r in table} == {"FAILED"}
    assert table[0]["rows_read"] == "111000"


def live_batch(base: str, batch_id: str) -> list[dict[str, object]]:
    start = datetime.now(UTC) - timedelta(hours=5)
    runs = [
        process(batch_id, "alpha", "qa", start),
        process(batch_id, "beta", "qa", start, status="RUNNING"),
        process(batch_id, "gamma", "qa", start, status="RUNNING"),
    ]
    post(base, runs)
    return runs


def test_live_update_after_a_post_keeps_sort_and_page(page: Page, ui_server: str) -> None:
    runs = live_batch(ui_server, "LIVE-1")
    page.goto("/?batch=LIVE-1&sort=pipeline&order=desc&page_size=25")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    assert card(page, "Running") == "2"
    url = page.url
    beta = {**runs[1], "status": "SUCCESS", "ended_at": datetime.now(UTC).isoformat()}
    post(ui_server, [beta])
    beta_row = row(page, "beta")
    expect(beta_row.locator(".badge")).to_contain_text("Success", timeout=2000)
    expect(page.locator("#batch-cards .card:has(dt:text-is('Running')) dd")).to_have_text("1")
    assert page.url == url
    assert rows(page) == ["gamma", "beta", "alpha"]  # still sorted descending
    expect(page.locator("th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    # A half-edited filter survives the refresh.
    page.check("#status-failed")
    post(ui_server, [{**runs[2], "status": "FAILED", "ended_at": datetime.now(UTC).isoformat()}])
    expect(page.locator("#batch-cards .card:has(dt:text-is('Failed')) dd")).to_have_text(
        "1", timeout=2000
    )
    assert page.is_checked("#status-failed")


def test_the_batch_picker_follows_the_open_batch(page: Page, ui_server: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    waiting = process("PICK-1", "alpha", "qa", start, status="PENDING")
    post(ui_server, [waiting])
    page.goto("/?batch=PICK-1")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    picked = page.locator("#batch option:checked")
    expect(picked).to_have_text("PICK-1 · not started · qa · red")
    post(ui_server, [{**waiting, "status": "RUNNING", "started_at": start.isoformat()}])
    expect(page.locator("#batch-cards .card:has(dt:text-is('Running')) dd")).to_have_text("1")
    shown = start.strftime("%Y-%m-%d %H:%M")
    expect(picked).to_have_text(f"PICK-1 · {shown} · qa · red", timeout=2000)
    post(
        ui_server,
        [
            {
                **waiting,
                "started_at": start.isoformat(),
                "status": "SUCCESS",
                "ended_at": datetime.now(UTC).isoformat(),
            }
        ],
    )
    expect(picked).to_have_text(f"PICK-1 · {shown} · qa · green", timeout=2000)


def test_falls_back_to_polling_while_the_stream_is_down(page: Page, ui_server: str) -> None:
    runs = live_batch(ui_server, "POLL-1")
    page.clock.install()
    page.route("**/api/v1/stream*", lambda route: route.abort())
    page.goto("/?batch=POLL-1")
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "reconnecting")
    expect(status).to_contain_text("Reconnecting")
    expect(status).to_contain_text("every 30 s")
    post(ui_server, [{**runs[1], "status": "FAILED", "ended_at": datetime.now(UTC).isoformat()}])
    failed = page.locator("#batch-cards .card:has(dt:text-is('Failed')) dd")
    page.wait_for_timeout(500)
    expect(failed).to_have_text("0")  # no stream, no news yet
    page.clock.run_for(31_000)
    expect(failed).to_have_text("1", timeout=3000)
    # The stream comes back: live again.
    page.unroute("**/api/v1/stream*")
    page.clock.run_for(6_000)
    expect(status).to_have_attribute("data-state", "live", timeout=10_000)


def axe_violations(page: Page) -> list[dict[str, object]]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


PAGES = [
    "/",
    f"/?batch={LIVE_BATCH}&status=FAILED&page_size=25",
    "/?env=dev&since=24h",  # the empty state
    f"/runs/{LIVE_BATCH}:load_005",
    f"/batches/{LIVE_BATCH}/dq",
    "/trends",
    "/trends?since=30d&env=prod",
    "/runs/no-such-run",  # the error page
    # Alerting and sources (with content in test_alerting_browser.py; empty states here).
    "/notifications",
    "/alerts",
    "/rules",
    "/channels",
    "/sources",
    "/sources/load_005?env=prod&field=sku_count",
    "/runbook",
    "/explore",
    "/explore?metric=runs.duration_s&aggregation=p95&group_by=env&since=7d&chart=bar",
    "/dashboards",
    "/dashboards/data-ops",
    "/dashboards/manager",
]
WIDGETS_DRAWN = "!document.querySelector('.widget-body[data-state=loading]')"


@pytest.mark.parametrize("width", [1440, 390])
def test_axe_finds_no_serious_violation_on_any_page(
    browser: Browser, ui_server: str, width: int
) -> None:
    if not AXE.is_file():
        from tests.conftest import need

        need("axe-core is not installed (scripts/build-ui --dev)")
    context = browser.new_context(base_url=ui_server, viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        found = {}
        for path in PAGES:
            page.goto(path)
            page.wait_for_load_state("networkidle") if "/runs/" in path else None
            page.wait_for_function(WIDGETS_DRAWN) if "/dashboards/" in path else None
            if violations := axe_violations(page):
                found[path] = violations
        assert found == {}
    finally:
        context.close()


def test_narrow_screens_do_not_scroll_sideways(browser: Browser, ui_server: str) -> None:
    context = browser.new_context(base_url=ui_server, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for path in PAGES:
            page.goto(path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, path
        # The process table scrolls inside its own region, reachable by keyboard.
        page.goto("/")
        region = page.locator(".table-scroll")
        assert region.get_attribute("tabindex") == "0"
        assert page.evaluate(
            "() => { const r = document.querySelector('.table-scroll');"
            " return r.scrollWidth > r.clientWidth; }"
        )
    finally:
        context.close()


@pytest.mark.parametrize("width", [390, 1024, 1280, 1600])
def test_the_bell_sits_on_the_brands_row(browser: Browser, ui_server: str, width: int) -> None:
    """The links wrap between the brand and the bell (or, on a phone, below them): the
    header never spends a row on the bell alone."""
    context = browser.new_context(base_url=ui_server, viewport={"width": width, "height": 800})
    page = context.new_page()
    try:
        page.goto("/")
        brand = page.locator("header.top .brand").bounding_box()
        bell = page.locator("#bell").bounding_box()
        first = page.locator("header nav a").first.bounding_box()
        assert brand is not None and bell is not None and first is not None
        assert abs((bell["y"] + bell["height"] / 2) - (brand["y"] + brand["height"] / 2)) < 10
        assert bell["x"] + bell["width"] > width - 40  # at the right edge
        if width >= 1024:  # the links start on that row too
            assert first["y"] < brand["y"] + brand["height"]
        # The bell keeps its name where its text is hidden.
        expect(page.get_by_role("link", name=re.compile("^Notifications"))).to_be_visible()
    finally:
        context.close()


def test_the_api_reference_works_without_the_internet(page: Page, ui_server: str) -> None:
    """/docs loads Swagger UI from flowdeck's own static files: every request the page
    makes stays on this server, and the operations are drawn."""
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith((ui_server, "data:")) else elsewhere.append(request.url)
        ),
    )
    page.goto("/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/runs").first).to_be_visible()
    assert elsewhere == []
