"""The metrics explorer in a real browser: the chart of a seeded metric, group-by through the
form (kept in the URL), zoom and PNG in the chart's toolbox, and the CSV download."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.slow


def chart_option(page: Page) -> dict[str, Any]:
    option: dict[str, Any] = page.evaluate(
        "() => echarts.getInstanceByDom(document.querySelector('[data-chart=explore]')).getOption()"
    )
    return option


def test_explorer_draws_groups_and_downloads_csv(page: Page, ui_server: str) -> None:
    now = int(time.time()) // 300 * 300
    body = [
        {
            "name": "explorer.load",
            "tags": {"host": host},
            "times": [now - 7200 + i * 300 for i in range(24)],
            "values": [level + i % 3 for i in range(24)],
        }
        for host, level in (("h1", 1.0), ("h2", 5.0), ("h3", 9.0))
    ]
    answer = httpx2.post(f"{ui_server}/api/v1/metrics/points", json=body, timeout=30)
    assert answer.status_code == 200, answer.text

    page.goto("/explore?metric=explorer.load&step=5m")
    expect(page.locator("[data-chart=explore] canvas")).to_have_count(1)
    option = chart_option(page)
    assert [s["name"] for s in option["series"]] == ["all"]
    assert len(option["series"][0]["data"]) == 24
    assert "saveAsImage" in option["toolbox"][0]["feature"]
    assert {z["type"] for z in option["dataZoom"]} == {"inside", "slider"}

    # Group by host from the form, by keyboard; the choice lands in the URL.
    page.get_by_label("host", exact=True).focus()
    page.keyboard.press("Space")
    page.select_option("#aggregation", "max")
    page.select_option("#chart", "bar")
    page.get_by_role("button", name="Show").press("Enter")
    expect(page).to_have_url(re.compile(r"/explore\?metric=explorer\.load&aggregation=max&"))
    assert "&chart=bar&group_by=host" in page.url
    expect(page.locator("[data-chart=explore] canvas")).to_have_count(1)
    option = chart_option(page)
    assert [s["name"] for s in option["series"]] == ["host=h1", "host=h2", "host=h3"]
    assert {s["type"] for s in option["series"]} == {"bar"}
    assert max(p[1] for p in option["series"][2]["data"]) == 11

    with page.expect_download() as info:
        page.click("#csv-link")
    download = info.value
    assert download.suggested_filename == "explorer.load-max.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert len(rows) == 72
    assert {r["host"] for r in rows} == {"h1", "h2", "h3"}
    assert list(rows[0]) == ["time", "host", "max"]
    assert max(float(r["max"]) for r in rows if r["host"] == "h2") == 7
