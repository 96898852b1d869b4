"""Time to data of the batch dashboard in headless Chromium, for batches of 100, 1,000 and
10,000 processes.

Starts ``flowdeck serve`` on a fresh DuckDB file, reports one batch of each size through
POST /api/v1/runs, then opens each batch's dashboard page in Debian's Chromium (through
Playwright, as the browser tests do) and measures, per page load, the wall time from the
navigation until the batch cards and the first page of the process table are in the DOM
("time to data"), the browser's own navigation timing, and two interactions that go back
to the server: sorting by duration and moving to the next page.

    .venv/bin/python bench/ui_time_to_data.py [--loads 20] [--sizes 100,1000,10000] [--quick]

Prints figures; decides nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from playwright.sync_api import Page, sync_playwright

from common import (
    Report,
    Server,
    base_parser,
    environment_banner,
    latency_summary,
    make_runs,
    ms,
    scratch_database,
)
from flowdeck.web.chromium import CHROMIUM, CHROMIUM_ARGS

DATA = "#batch-cards dd >> nth=0"
FIRST_ROW = "#runs-data tbody tr th a >> nth=0"


def load(server: Server, sizes: list[int]) -> dict[int, str]:
    """One batch per size, started an hour ago; returns size → batch id."""
    import urllib.request

    batches = {}
    start = datetime.now(UTC) - timedelta(hours=1)
    for i, size in enumerate(sizes):
        first = 900_000 + i
        runs = make_runs(
            size, prefix=f"ui{size}", processes_per_batch=size, first_batch=first, start=start
        )
        for chunk in range(0, len(runs), 10_000):
            body = orjson.dumps(runs[chunk : chunk + 10_000])
            request = urllib.request.Request(
                server.base + "/api/v1/runs",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=300) as answer:
                assert answer.status == 200
        batches[size] = str(first)
    return batches


def time_to_data(page: Page, url: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(DATA, state="attached")
    page.wait_for_selector(FIRST_ROW, state="attached")
    elapsed = time.perf_counter() - t0
    timing: dict[str, Any] = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return {response: n.responseEnd, dom: n.domContentLoadedEventEnd,"
        " bytes: n.transferSize}; }"
    )
    return elapsed, timing


def interaction(page: Page, selector: str, until: str) -> float:
    t0 = time.perf_counter()
    page.click(selector)
    page.wait_for_selector(until, state="attached")
    return time.perf_counter() - t0


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--loads", type=int, default=20, help="page loads per batch size")
    parser.add_argument("--sizes", default="100,1000,10000", help="processes per batch")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    loads = 5 if args.quick else args.loads
    environment_banner(args.db, f"Chromium {CHROMIUM}, {loads} loads per size")
    with scratch_database(args.db, args.pg_admin, "ui") as url, Server(url) as server:
        t0 = time.perf_counter()
        batches = load(server, sizes)
        print(f"loaded {sum(sizes):,} runs in {time.perf_counter() - t0:.1f} s", flush=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            for size in sizes:
                base = f"{server.base}/?batch={batches[size]}&since=30d"
                time_to_data(page, base)  # warm-up: static files into the cache
                walls, responses, doms = [], [], []
                size_bytes = 0
                for _ in range(loads):
                    wall, timing = time_to_data(page, base)
                    walls.append(wall)
                    responses.append(timing["response"] / 1000)
                    doms.append(timing["dom"] / 1000)
                    size_bytes = int(timing["bytes"])
                sorts, nexts = [], []
                for _ in range(max(3, loads // 4)):
                    time_to_data(page, base)
                    sorts.append(
                        interaction(page, "#sort-duration_s", "th[aria-sort='descending']")
                    )
                    nexts.append(
                        interaction(page, "#process-pages-next", "#process-pages-prev")
                        if size > 50
                        else float("nan")
                    )
                report = Report(f"batch of {size:,} processes (page of 50 rows)")
                ttd = latency_summary(walls)
                report.line(
                    "time to data (navigation → cards + rows)",
                    f"p50 {ms(ttd['p50'])}  p95 {ms(ttd['p95'])}  max {ms(ttd['max'])}",
                )
                report.line(
                    "  of which: HTML response complete (p50)",
                    ms(latency_summary(responses)["p50"]),
                )
                report.line("  DOMContentLoaded (p50)", ms(latency_summary(doms)["p50"]))
                report.line("  HTML transferred", f"{size_bytes / 1024:,.0f} KiB")
                report.line("sort by duration (click → rows)", ms(latency_summary(sorts)["p50"]))
                report.line("next page (click → rows)", ms(latency_summary(nexts)["p50"]))
            context.close()
            browser.close()


if __name__ == "__main__":
    main()
