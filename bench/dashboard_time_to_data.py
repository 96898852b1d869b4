"""Time to data of a 12-widget dashboard in headless Chromium.

Starts ``flowdeck serve`` on a fresh database, reports 30 days of daily batches through
POST /api/v1/runs (and an hour of metric points), creates a dashboard of 12 widgets (line,
bar, pie, heatmap, gauge, stat, table over run, batch and reported metrics, plus an alert
list and a batch status) through the API, then opens it in Debian's Chromium (through
Playwright, as the browser tests do) and measures, per page load, the wall time from the
navigation until all 12 widgets are drawn with their data ("time to data"). For scale, the
same 12 widget-data requests the page makes are then sent directly (6 at a time, a
browser's connections per host), and so are the metrics query API calls behind the 10
metric widgets (POST /api/v1/metrics/query with the same bodies).

    .venv/bin/python bench/dashboard_time_to_data.py [--loads 20] [--runs 60000] [--quick]

Prints figures; decides nothing.
"""

from __future__ import annotations

import json
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
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
from flowdeck.dashboards.templates import widget as template_widget
from flowdeck.web.chromium import CHROMIUM, CHROMIUM_ARGS

WIDGETS = 12
CONNECTIONS = 6  # what a browser opens to one host
ALL_DRAWN = (
    f"document.querySelectorAll('.widget-body[data-state=ready]').length === {WIDGETS}"
    " && document.querySelectorAll('.widget-body[data-loads=\"0\"]').length === 0"
)


def widget(
    wid: str,
    kind: str,
    grid: tuple[int, int, int, int],
    query: dict[str, Any] | None = None,
    **o: Any,
) -> dict[str, Any]:
    """A widget titled by its id, spelled as the built-in templates spell theirs."""
    return template_widget(wid, kind, wid, grid, query, **o)


def dashboard() -> dict[str, Any]:
    by = {"aggregation": "count", "metric": "runs.count"}
    widgets = [
        widget(
            "stat-success",
            "stat",
            (0, 0, 3, 3),
            {"metric": "runs.success_rate"},
            reduce="overall",
            format="percent",
        ),
        widget("stat-runs", "stat", (3, 0, 3, 3), by, reduce="overall"),
        widget(
            "gauge-green",
            "gauge",
            (6, 0, 3, 3),
            {"metric": "batches.green"},
            reduce="overall",
            format="percent",
        ),
        widget("batch", "batch_status", (9, 0, 3, 3)),
        widget(
            "line-duration",
            "line",
            (0, 3, 6, 4),
            {"metric": "runs.duration_s", "aggregation": "p95", "group_by": ["env"]},
        ),
        widget(
            "bar-status",
            "bar",
            (6, 3, 6, 4),
            {**by, "group_by": ["status"], "step": "1d"},
            stack=True,
        ),
        widget(
            "pie-status",
            "pie",
            (0, 7, 4, 4),
            {**by, "group_by": ["status"]},
            reduce="total",
            donut=True,
        ),
        widget("heat-env", "heatmap", (4, 7, 8, 4), {**by, "group_by": ["env"], "step": "1d"}),
        widget(
            "table-failures",
            "table",
            (0, 11, 4, 4),
            {**by, "group_by": ["pipeline"], "filters": [{"tag": "status", "value": "FAILED"}]},
            reduce="total",
        ),
        widget(
            "line-rows",
            "line",
            (4, 11, 4, 4),
            {"metric": "runs.rows_written", "aggregation": "sum", "group_by": ["env"]},
        ),
        widget(
            "line-points",
            "line",
            (8, 11, 4, 4),
            {"metric": "bench.latency_ms", "aggregation": "p95", "group_by": ["host"]},
        ),
        widget("alerts", "alerts", (0, 15, 12, 3)),
    ]
    assert len(widgets) == WIDGETS
    return {"title": "Bench", "time_range": {"last": "30d"}, "refresh": "off", "widgets": widgets}


def post(base: str, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        base + path, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        assert answer.status in (200, 201), answer.status
        return json.loads(answer.read())


def load(server: Server, runs: int) -> str:
    """30 days of runs, an hour of points; returns the dashboard's id."""
    start = datetime.now(UTC) - timedelta(days=30)
    reports = make_runs(runs, prefix="dash", processes_per_batch=max(runs // 90, 1), start=start)
    for chunk in range(0, len(reports), 10_000):
        post(server.base, "/api/v1/runs", reports[chunk : chunk + 10_000])
    now = int(time.time())
    points = [
        {
            "name": "bench.latency_ms",
            "tags": {"host": f"h{h}"},
            "times": list(range(now - 3600, now, 10)),
            "values": [float((i * 7 + h) % 100) for i in range(360)],
        }
        for h in range(8)
    ]
    post(server.base, "/api/v1/metrics/points", points)
    created: dict[str, Any] = post(server.base, "/api/v1/dashboards", dashboard())
    return str(created["id"])


def time_to_data(page: Page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(ALL_DRAWN, polling="raf", timeout=120_000)
    return time.perf_counter() - t0


def direct(base: str, calls: list[tuple[str, dict[str, Any]]]) -> float:
    """The calls sent straight to the API, CONNECTIONS at a time; wall seconds."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(lambda call: post(base, *call), calls))
    return time.perf_counter() - t0


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--loads", type=int, default=20, help="page loads")
    parser.add_argument("--runs", type=int, default=60_000, help="runs over the 30 days")
    args = parser.parse_args()
    loads = 5 if args.quick else args.loads
    runs = 6_000 if args.quick else args.runs
    environment_banner(args.db, f"Chromium {CHROMIUM}, {loads} loads, {runs:,} runs")
    with scratch_database(args.db, args.pg_admin, "dash") as url, Server(url) as server:
        t0 = time.perf_counter()
        board_id = load(server, runs)
        print(f"loaded {runs:,} runs in {time.perf_counter() - t0:.1f} s", flush=True)
        spec = dashboard()
        time_range = spec["time_range"]
        widget_calls = [
            ("/api/v1/dashboards/widget-data", {"widget": w, "time_range": time_range})
            for w in spec["widgets"]
        ]
        walls = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            page = context.new_page()
            target = f"{server.base}/dashboards/{board_id}"
            time_to_data(page, target)  # warm-up: static files into the cache
            for _ in range(loads):
                walls.append(time_to_data(page, target))
            context.close()
            browser.close()
        # The metrics query API behind the metric widgets, with the widgets' own bodies.
        data = [post(server.base, path, body) for path, body in widget_calls]
        query_calls = [
            (
                "/api/v1/metrics/query",
                {
                    **{k: v for k, v in w["query"].items() if k != "step"},
                    "start": d["start"],
                    "end": d["end"],
                    "step": d["result"]["step"],
                },
            )
            for w, d in zip(spec["widgets"], data, strict=True)
            if "query" in w
        ]
        direct(server.base, widget_calls)  # warm-up
        widget_walls = [direct(server.base, widget_calls) for _ in range(loads)]
        query_walls = [direct(server.base, query_calls) for _ in range(loads)]

        report = Report(f"dashboard of {WIDGETS} widgets over 30 days ({runs:,} runs)")
        page_ms = latency_summary(walls)
        widget_ms = latency_summary(widget_walls)
        query_ms = latency_summary(query_walls)
        report.line(
            "time to data (navigation → 12 widgets drawn)",
            f"p50 {ms(page_ms['p50'])}  p95 {ms(page_ms['p95'])}  max {ms(page_ms['max'])}",
        )
        report.line(
            f"the 12 widget-data calls, direct ({CONNECTIONS} at a time)",
            f"p50 {ms(widget_ms['p50'])}  p95 {ms(widget_ms['p95'])}",
        )
        report.line(
            f"the {len(query_calls)} metrics queries behind them, direct",
            f"p50 {ms(query_ms['p50'])}  p95 {ms(query_ms['p95'])}",
        )
        report.ratio("page / widget-data calls (p50)", page_ms["p50"], widget_ms["p50"])
        report.ratio("page / metrics queries (p50)", page_ms["p50"], query_ms["p50"])


if __name__ == "__main__":
    main()
