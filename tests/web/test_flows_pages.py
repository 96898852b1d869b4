"""The live pipeline pages in-process (both backends): the list with its lights, one flow's
diagram, KPIs and signals, the fragment the page refreshes, and the pages' errors."""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.testclient import TestClient

from tests.api.conftest import client, make_client
from tests.conftest import FixedClock
from tests.flows.conftest import declaration, series

__all__ = ["client", "make_client"]

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def report(client: TestClient, clock: FixedClock) -> None:
    now = clock.now.timestamp()
    minute = [float(t) for t in range(int(now) - 60, int(now))]
    points = [
        series("flow.arrivals", minute, [12] * 60, stage="ingest"),
        series("flow.processed", minute, [12] * 60, stage="ingest"),
        series("flow.arrivals", minute, [12] * 60, stage="enrich"),
        series("flow.processed", minute, [5] * 60, stage="enrich"),
        series("flow.queue_depth", [now - 1], [940], stage="enrich"),
        series("flow.arrivals", minute, [5] * 60, stage="store"),
        series("flow.processed", minute, [5] * 60, stage="store"),
        series("flow.events", minute, [4] * 60, signal="sales_activity"),
        series("flow.events", minute, [1] * 60, signal="field_reports"),
        series(
            "flow.e2e_latency_ms", [now - 2] * 3, [800.0, 900.0, 950.0], signal="sales_activity"
        ),
    ]
    assert client.post("/api/v1/metrics/points", json=points).status_code == 200


def test_list_page_shows_each_flow_with_its_lights(client: TestClient, clock: FixedClock) -> None:
    empty = client.get("/flows", headers=HTML)
    assert empty.status_code == 200
    assert "No flow declared yet" in empty.text
    assert 'aria-current="page">Live</a>' in empty.text

    assert client.put("/api/v1/flows/ms", json=declaration()).status_code == 201
    assert client.put("/api/v1/flows/quiet", json={"stages": [{"name": "only"}]}).status_code == 201
    report(client, clock)
    page = client.get("/flows", headers=HTML)
    assert page.status_code == 200
    assert '<a href="/flows/ms">Market signals</a>' in page.text
    assert 'data-flow="ms" data-light="red"' in page.text
    assert 'data-flow="quiet" data-light="orange"' in page.text
    assert "enrich: queue 94 % full (940 of 1,000 events; red at 90 %)" in page.text
    # The htmx refresh asks for the list alone.
    part = client.get("/flows", headers={**HTML, "HX-Request": "true", "HX-Target": "flow-list"})
    assert part.text.lstrip().startswith('<section id="flow-list"')
    assert "<html" not in part.text


def test_flow_page_draws_the_stages_and_numbers(client: TestClient, clock: FixedClock) -> None:
    assert client.put("/api/v1/flows/ms", json=declaration()).status_code == 201
    report(client, clock)
    page = client.get("/flows/ms", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "<title>Market signals · live · flowdeck</title>" in text
    assert 'id="flow-light" data-light="red"' in text
    # The diagram: three stages in order with arrows between them carrying the rate.
    assert text.index('data-stage="ingest"') < text.index('data-stage="enrich"')
    assert text.index('data-stage="enrich"') < text.index('data-stage="store"')
    assert text.count('class="stage-arrow"') == 2
    assert '<span class="arrow-rate">12.0/s</span>' in text
    enrich = text[text.index('data-stage="enrich"') : text.index('data-stage="store"')]
    assert 'data-light="red"' in enrich
    assert '<strong class="queue-depth">940</strong>' in enrich
    assert "Bottleneck" in enrich
    assert 'style="width: 94.0%"' in enrich
    assert '<dd id="kpi-events">300</dd>' in text
    assert '<dd id="kpi-speed">5.00/s</dd>' in text
    assert '<dd id="kpi-backlog">940</dd>' in text
    # 800, 900, 950 ms: the sketch's p95 is the value at index floor(0.95 × 2) = 1, ± 1 %.
    assert re.search(r'<dd id="kpi-p95">(89[1-9]|90[0-9]) ms</dd>', text)
    assert 'data-signal="sales_activity"' in text and "80.0 %" in text
    assert 'data-trend="rates"' in text
    assert 'id="flow-trend"' in text

    part = client.get(
        "/flows/ms?window=60&trend=15m",
        headers={**HTML, "HX-Request": "true", "HX-Target": "flow-live"},
    )
    assert part.status_code == 200
    assert part.text.startswith('<div id="flow-live"')
    assert "<html" not in part.text

    clock.now += timedelta(minutes=10)  # nothing reported since: stale
    stale = client.get("/flows/ms", headers=HTML)
    assert 'id="flow-light" data-light="orange"' in stale.text
    assert "no data for 10 min" in stale.text


def test_flow_page_errors(client: TestClient) -> None:
    missing = client.get("/flows/nope", headers=HTML)
    assert missing.status_code == 404
    assert "flow &#39;nope&#39; not found" in missing.text
    assert client.put("/api/v1/flows/ms", json=declaration()).status_code == 201
    bad = client.get("/flows/ms?window=9", headers=HTML)
    assert bad.status_code == 422
    assert "window: must be 10 s to 1 h" in bad.text


def test_flow_page_lists_the_thresholds_in_use(client: TestClient) -> None:
    body = declaration(
        thresholds={"queue_fill": {"red": 0.95}, "backlog": {"orange": 500}},
        stages=[{"name": "a"}, {"name": "b", "latency_p95_ms": {"orange": 3000}}],
    )
    assert client.put("/api/v1/flows/ms", json=body).status_code == 201
    text = client.get("/flows/ms", headers=HTML).text
    rows = text[text.index('class="panel flow-thresholds"') :]
    assert (
        '<tr><th scope="row">Queue fill</th><td class="num">50 %</td><td class="num">95 %</td>'
        in rows
    )
    assert '<th scope="row">Backlog</th><td class="num">500</td><td class="num">off</td>' in rows
    assert '<th scope="row">b p95</th><td class="num">3.0 s</td><td class="num">off</td>' in rows
    assert '<th scope="row">No data</th><td class="num">2 min</td>' in rows
