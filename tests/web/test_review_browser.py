"""The review flow in a real browser: approve one sample with the keyboard, reject one
(refused without a note, then with one), and see the counts and the approval rate change;
a sample that arrives meanwhile shows up live."""

from __future__ import annotations

import uuid
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import need
from tests.web.conftest import AXE
from tests.web.test_browser import axe_violations

pytestmark = pytest.mark.slow

API = "/api/v1/review"


def send(base: str, pipeline: str, *events: str) -> list[str]:
    body: list[dict[str, Any]] = [
        {
            "pipeline": pipeline,
            "event_id": event,
            "signal": "sales_activity",
            "record": {"store": "S-12", "sku": f"SKU-{event}", "units": 3, "price": 9.5},
            "context": {"source": "pos", "model": {"name": "enrich", "version": 3}},
        }
        for event in events
    ]
    answer = httpx2.post(f"{base}{API}/samples", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    ids: list[str] = answer.json()["ids"]
    return ids


def status_of(base: str, sample_id: str) -> dict[str, Any]:
    got: dict[str, Any] = httpx2.get(f"{base}{API}/samples/{sample_id}", timeout=30).json()
    return got


def test_approve_one_reject_one_and_the_counts_follow(page: Page, ui_server: str) -> None:
    pipeline = f"review_{uuid.uuid4().hex[:6]}"
    first, second, third = send(ui_server, pipeline, "evt-1", "evt-2", "evt-3")
    page.goto(f"/review?pipeline={pipeline}")
    expect(page.locator("[data-count='pending']")).to_have_text("3")
    expect(page.locator("article.sample")).to_have_count(3)
    card = page.locator(f"#s-{first}")
    expect(card.locator(".doc-box").first).to_contain_text("SKU-evt-1")
    expect(card.locator(".context")).to_contain_text("enrich")
    expect(page.locator("body")).to_have_attribute("data-stream-state", "open")
    expect(page.locator("#review-chart canvas")).to_have_count(1)  # review.js is running

    # The keyboard: j selects the first sample, a approves it.
    page.keyboard.press("j")
    expect(card).to_have_class("sample panel current")
    page.keyboard.press("a")
    expect(page.locator("#done")).to_contain_text("Approved evt-1")
    expect(page.locator("[data-count='pending']")).to_have_text("2")
    expect(page.locator("[data-count='approved']")).to_have_text("1")
    assert status_of(ui_server, first)["status"] == "approved"

    # After the decision the next sample is current: r without a note asks for one.
    card = page.locator(f"#s-{second}")
    expect(card).to_have_class("sample panel current")
    page.keyboard.press("r")
    note = card.locator("textarea[data-note]")
    expect(note).to_be_focused()
    expect(card.locator(".note-needed")).to_have_text(
        "A rejection needs a note: say what is wrong."
    )
    expect(note).to_have_attribute("aria-invalid", "true")
    assert status_of(ui_server, second)["status"] == "pending"
    note.fill("price is per pack, not per unit")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#done")).to_contain_text("Rejected evt-2")
    expect(page.locator("[data-count='rejected']")).to_have_text("1")
    expect(page.locator("[data-count='approval_rate']")).to_have_text("50.0 %")
    got = status_of(ui_server, second)
    assert (got["status"], got["note"]) == ("rejected", "price is per pack, not per unit")

    # A new sample arrives: the counts follow live, and the page offers to show it.
    expect(page.locator("#new-samples")).to_be_hidden()
    send(ui_server, pipeline, "evt-4")
    expect(page.locator("[data-count='pending']")).to_have_text("2")
    expect(page.locator("#new-samples")).to_be_visible()

    # The rejected filter shows the note; the CSV link keeps the filters.
    page.select_option("#f-status", "rejected")
    page.click("#review-filters button[type='submit']")
    expect(page.locator("article.sample")).to_have_count(1)
    expect(page.locator(".decided-note")).to_have_text("price is per pack, not per unit")
    href = page.locator("#csv-link").get_attribute("href")
    assert href == f"/api/v1/review/samples.csv?status=rejected&pipeline={pipeline}"
    with page.expect_download() as download:
        page.click("#csv-link")
    text = download.value.path().read_text(encoding="utf-8")
    assert "evt-2" in text and "price is per pack, not per unit" in text and "evt-1" not in text
    assert third  # still pending, untouched
    assert status_of(ui_server, third)["status"] == "pending"


def test_reject_with_a_click_and_a_note_on_the_sample_page(page: Page, ui_server: str) -> None:
    pipeline = f"review_{uuid.uuid4().hex[:6]}"
    (only,) = send(ui_server, pipeline, "evt-9")
    page.goto(f"/review?pipeline={pipeline}")
    page.click(f"#s-{only} h2 a")
    expect(page.locator("h1")).to_have_text(f"Sample of {pipeline}")
    page.click("[data-reject]")
    expect(page.locator(".note-needed")).to_be_visible()
    page.fill("textarea[data-note]", "duplicate of evt-8")
    page.fill("input[name='reviewer']", "bo")
    page.click("[data-reject]")
    expect(page.locator(".decided")).to_contain_text("Rejected by bo")
    expect(page.locator(".decided-note")).to_have_text("duplicate of evt-8")
    page.click("text=Back to the queue")
    expect(page.locator("#queue-empty")).to_contain_text("Nothing to review")


@pytest.mark.parametrize("width", [1440, 390])
def test_axe_and_narrow_screens_on_the_review_pages(
    browser: Browser, ui_server: str, width: int
) -> None:
    if not AXE.is_file():
        need("axe-core is not installed (scripts/build-ui --dev)")
    pipeline = f"review_{uuid.uuid4().hex[:6]}"
    first, second = send(ui_server, pipeline, "evt-a", "evt-b")
    httpx2.post(
        f"{ui_server}{API}/samples/{second}/decision",
        json={"outcome": "rejected", "note": "units do not add up"},
        timeout=30,
    )
    context = browser.new_context(base_url=ui_server, viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        found: dict[str, Any] = {}
        for path in (
            f"/review?pipeline={pipeline}",
            f"/review?pipeline={pipeline}&status=all",
            f"/review/{first}",
            f"/review/{second}",
            "/review?pipeline=nothing-here",
        ):
            page.goto(path)
            if violations := axe_violations(page):
                found[path] = violations
            if width == 390:
                scroll = page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= 390, path
        assert found == {}
    finally:
        context.close()
