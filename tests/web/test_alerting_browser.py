"""Alerting's pages and the sources pages in a real browser against a real server started
with an alerts file: the bell follows the change stream, notifications are marked read,
an alert is acknowledged and silenced from its page, a channel's test button shows the
delivery, stale sources stand out and a label value opens its own page, the runbook's
anchors; axe-core and narrow screens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Page, expect

from flowdeck.web.templating import STATIC
from tests.alerts.receivers import HttpReceiver, http_receiver, wait_until
from tests.conftest import need
from tests.servers import ServerProcess, free_port
from tests.web.conftest import AXE
from tests.web.seed import process
from tests.web.test_browser import axe_violations

pytestmark = pytest.mark.slow


def post(base: str, runs: list[dict[str, Any]]) -> None:
    answer = httpx2.post(f"{base}/api/v1/runs", json=runs, timeout=30)
    assert answer.status_code == 200, answer.text


def estate(now: datetime) -> list[dict[str, Any]]:
    """feed_stale last succeeded 2 days ago; feed_daily succeeds every day (one failure)."""
    runs = []
    for day in (4, 3, 2):
        start = now - timedelta(days=day)
        runs.append(
            process(f"S{day}", "feed_stale", "prod", start, custom_stats={"sku_count": 900 + day})
        )
    for day in range(6, -1, -1):
        start = now - timedelta(days=day, minutes=30)
        runs.append(
            process(
                f"D{day}",
                "feed_daily",
                "prod",
                start,
                status="FAILED" if day == 3 else "SUCCESS",
                custom_stats={"sku_count": 48_000 + day * 250, "promo_count": 40 + day},
                labels={"retailer": "acme"},
            )
        )
    return runs


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, receiver: HttpReceiver) -> Iterator[str]:
    if not (STATIC / "vendor" / "htmx.min.js").is_file():
        need("the dashboard's front-end packages are not built (scripts/build-ui)")
    folder = tmp_path_factory.mktemp("alerting-ui")
    alerts = folder / "alerts.yaml"
    alerts.write_text(
        "channels:\n"
        f"  - {{name: ops-hook, type: webhook, url: '{receiver.base}/hook'}}\n"
        "rules:\n"
        "  - name: two-failures\n"
        "    kind: consecutive_failures\n"
        "    group_wait: 0s\n"
        "    channels: [ops-hook]\n"
        "    remediation: Check the supplier feed, then rerun the batch.\n"
        "  - {name: feeds-stale, kind: stale, max_age: 6h, group_wait: 0s,"
        " selector: {pipeline: 'feed_*'}}\n"
    )
    db = folder / "flowdeck.duckdb"
    proc = ServerProcess(
        "serve",
        "--db",
        f"duckdb://{db}",
        "--alerts",
        str(alerts),
        env={"FLOWDECK_ALERT_TICK_SECONDS": "1"},
    ).wait_healthy()
    base = proc.base
    try:
        post(base, estate(datetime.now(UTC)))
        dead = {"name": "dead-hook", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/"}
        assert httpx2.post(f"{base}/api/v1/channels", json=dead).status_code == 201
        # The stale feed fires at the next tick; start every test with nothing unread.
        wait_until(
            lambda: httpx2.get(f"{base}/api/v1/notifications?unread=true").json()["unread"],
            15,
            "the stale alert's notification",
        )
        httpx2.post(f"{base}/api/v1/notifications/read", json={})
        yield base
    finally:
        proc.stop()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(base_url=server, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda error: errors.append(error))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def fail_twice(base: str, pipeline: str) -> None:
    now = datetime.now(UTC)
    post(
        base,
        [
            process(
                f"F{i}-{pipeline}",
                pipeline,
                "prod",
                now - timedelta(minutes=10 - i),
                status="FAILED",
                seconds=30,
                labels={"retailer": "globex"},
            )
            for i in (1, 2)
        ],
    )


def unread(page: Page) -> str | None:
    return page.locator("#bell [data-unread]").get_attribute("data-unread")


def test_bell_counts_live_and_notifications_are_marked_read(page: Page, server: str) -> None:
    page.goto("/sources")
    expect(page.locator("#bell [data-unread]")).to_have_attribute("data-unread", "0")
    expect(page.get_by_role("link", name=re.compile("^Notifications"))).to_be_visible()
    fail_twice(server, "load_bell_a")
    # No reload: the change stream tells the page, which refreshes the bell.
    expect(page.locator("#bell [data-unread]")).to_have_attribute("data-unread", "1", timeout=5000)
    fail_twice(server, "load_bell_b")
    expect(page.locator("#bell [data-unread]")).to_have_attribute("data-unread", "2", timeout=5000)
    page.click("#bell")
    expect(page).to_have_url(re.compile("/notifications$"))
    items = page.locator("li.notification.unread")
    expect(items).to_have_count(2)
    first = items.first
    expect(first).to_contain_text("failed 2 times in a row")
    first.get_by_role("button", name=re.compile("^Mark read")).click()
    expect(page.locator("li.notification.unread")).to_have_count(1)
    assert unread(page) == "1"
    page.click("#mark-all-read")
    expect(page.locator("li.notification.unread")).to_have_count(0)
    assert unread(page) == "0"


def test_acknowledge_and_silence_from_the_alert_page(page: Page, server: str) -> None:
    fail_twice(server, "load_ack")
    page.goto("/alerts")
    link = page.locator("#firing").get_by_role("link", name=re.compile("load_ack \\(prod\\)"))
    expect(link).to_be_visible(timeout=5000)  # the list refreshes itself
    link.click()
    expect(page.locator("h1")).to_contain_text("load_ack (prod) failed 2 times in a row")
    expect(page.get_by_role("link", name="Runbook: consecutive failures")).to_be_visible()
    expect(page.get_by_role("link", name="load_ack", exact=True)).to_have_attribute(
        "href", "/sources/load_ack?env=prod&project=default"
    )
    page.get_by_label("Your name").first.fill("ana")
    page.get_by_label("Comment").fill("looking at the feed")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(".done")).to_contain_text("Acknowledged")
    expect(page.locator("#acknowledge")).to_contain_text("Acknowledged by ana")
    # The silence form: matchers from the alert, the name remembered from the last form.
    matchers = page.get_by_label(re.compile("^Matchers"))
    expect(matchers).to_have_value(re.compile("pipeline=load_ack"))
    expect(page.locator("#sil-author")).to_have_value("ana")
    page.select_option("#sil-duration", "4h")
    page.fill("#sil-comment", "supplier maintenance")
    page.get_by_role("button", name="Silence", exact=True).click()
    expect(page.locator(".done")).to_contain_text("Silence created")
    expect(page.locator(".badges")).to_contain_text("Silenced")
    page.goto("/alerts")
    expect(page.locator("#silenced")).to_contain_text("load_ack")
    expect(page.locator("#silences")).to_contain_text("supplier maintenance")


def test_send_test_notification_and_a_failing_channel(page: Page, receiver: HttpReceiver) -> None:
    page.goto("/channels")
    ops = page.locator("#channel-ops-hook")
    ops.get_by_role("button", name=re.compile("Send test notification")).click()
    expect(ops.locator(".test-result")).to_contain_text("Test delivered (HTTP 200)")
    assert receiver.wait_for(1, "/hook")[-1].json()["test"] is True
    dead = page.locator("#channel-dead-hook")
    for _ in range(2):
        dead.get_by_role("button", name=re.compile("Send test notification")).click()
        expect(dead.locator(".test-result")).to_contain_text("Test failed: cannot reach")
        page.wait_for_timeout(100)
    page.reload()
    expect(page.locator("#channel-dead-hook")).to_have_class(re.compile("failing"))
    expect(page.locator("#channel-dead-hook .health-badge")).to_contain_text("Failing")


def test_sources_highlight_the_stale_one_and_open_its_trends(page: Page) -> None:
    page.goto("/sources")
    page.select_option("#field", "sku_count")
    page.click("text=Apply")
    expect(page).to_have_url(re.compile("field=sku_count"))
    stale = page.locator("tr.stale")
    expect(stale.first).to_contain_text("feed_stale")
    expect(stale.first).to_contain_text("Stale")
    daily = page.locator("tbody tr").filter(has=page.get_by_role("link", name="feed_daily"))
    expect(daily).not_to_have_class(re.compile("stale"))
    expect(daily).to_contain_text("Fresh")
    expect(daily.locator("svg.spark circle")).to_have_count(1)  # the failed run
    page.select_option("#by", "retailer")
    page.click("text=Apply")
    acme = page.locator("tbody tr").filter(has_text="acme (1 pipeline)")
    expect(acme).to_contain_text("Fresh")
    expect(page.locator("tr.stale").first).to_contain_text("(none)")  # feed_stale: no retailer
    # A label value has its own page: its pipelines, the summed trend, its failures.
    acme.get_by_role("link", name="acme", exact=True).click()
    expect(page).to_have_url(re.compile(r"/sources/by/retailer/acme\?env=prod&.*field=sku_count"))
    expect(page.locator("h1")).to_contain_text("acme")
    member = page.locator("tbody tr").filter(has=page.get_by_role("link", name="feed_daily"))
    expect(member).to_contain_text("Fresh")
    expect(page.locator("#fail-h")).to_contain_text("1 of the last 7 runs")
    page.wait_for_load_state("networkidle")
    expect(page.locator("[data-chart=source-field] canvas")).to_have_count(1)
    page.select_option("#field", "promo_count")
    page.click("text=Show")
    expect(page.locator("#g-field")).to_contain_text("promo_count per batch")
    page.goto("/sources?by=retailer&field=sku_count")
    stale_group = page.locator("tr.stale").first
    stale_group.locator("td").first.click()  # the whole row opens it
    expect(page).to_have_url(re.compile(r"/sources/by/retailer/%28none%29\?"))
    expect(page.locator(".stale-banner")).to_contain_text("1 of 1 pipeline")
    expect(page.locator("tr.stale")).to_contain_text("feed_stale")
    page.goto("/sources?field=sku_count")
    page.get_by_role("link", name="feed_stale").click()
    expect(page.locator(".stale-banner")).to_contain_text("no successful run since")
    expect(page.locator(".stale-banner")).to_contain_text("feeds-stale")
    page.wait_for_load_state("networkidle")
    expect(page.locator("[data-chart=source-field] canvas")).to_have_count(1)
    page.goto("/sources/feed_daily?env=prod&field=sku_count")
    expect(page.locator("#fail-h")).to_contain_text("1 of the last 7 runs")


def alert_pages(base: str) -> list[str]:
    items = httpx2.get(f"{base}/api/v1/alerts?state=firing").json()["items"]
    pages = [
        "/notifications",
        "/alerts",
        "/rules",
        "/rules/two-failures",
        "/channels",
        "/channels/dead-hook",
        "/sources",
        "/sources?by=retailer&field=sku_count",
        "/sources/feed_daily?env=prod&field=sku_count",
        "/sources/by/retailer/acme?env=prod&field=sku_count",
        "/sources/by/retailer/(none)?env=prod",
        "/runbook",
    ]
    if items:
        pages.append(f"/alerts/{items[0]['fingerprint']}")
    return pages


@pytest.mark.parametrize("width", [1440, 390])
def test_axe_and_narrow_screens_on_the_alerting_pages(
    browser: Browser, server: str, width: int
) -> None:
    if not AXE.is_file():
        need("axe-core is not installed (scripts/build-ui --dev)")
    context = browser.new_context(base_url=server, viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        found: dict[str, Any] = {}
        for path in alert_pages(server):
            page.goto(path)
            if violations := axe_violations(page):
                found[path] = violations
            if width == 390:
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 390, path
        assert found == {}
    finally:
        context.close()


def test_a_notification_link_lands_on_its_rule_kind_in_the_runbook(page: Page) -> None:
    page.goto("/runbook#stale")
    heading = page.locator("h2#stale")
    expect(heading).to_have_text("stale")
    expect(heading).to_be_in_viewport()
    expect(page.locator("h2#long_running")).not_to_be_in_viewport()
    page.get_by_role("link", name="Markdown").click()
    expect(page.locator("body")).to_contain_text("# flowdeck alert runbook")


def test_keyboard_reaches_the_bell(page: Page) -> None:
    page.goto("/alerts")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "bell":
            break
    assert page.evaluate("document.activeElement.id") == "bell"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("/notifications"))
