"""The SLO pages in-process, on both backends: the list with each SLO's state, compliance,
budget and burn rates; one SLO with its chart data, burn rates and definition; the htmx
fragments that keep them fresh; unknown names and ranges."""

from __future__ import annotations

from datetime import timedelta

import orjson
from starlette.testclient import TestClient

from tests.conftest import FixedClock
from tests.slo.conftest import latencies

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def seed(client: TestClient, clock: FixedClock) -> None:
    body = {"pipeline": "market_signals", "kind": "latency", "objective": 95, "threshold_ms": 2000}
    assert client.put("/api/v1/slos/signals-latency", json=body).status_code == 201
    rate = {"pipeline": "load_sales", "kind": "success_rate", "objective": 99}
    assert client.put("/api/v1/slos/sales-success", json=rate).status_code == 201
    latencies(client, clock.now - timedelta(minutes=3), [400.0] * 80 + [4000.0] * 20)
    latencies(client, clock.now - timedelta(hours=5), [400.0] * 100)


def test_the_list_shows_state_compliance_budget_and_burn(
    client: TestClient, clock: FixedClock
) -> None:
    empty = client.get("/slos", headers=HTML)
    assert empty.status_code == 200
    assert "No SLOs yet." in empty.text
    seed(client, clock)
    page = client.get("/slos", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert '<a href="/slos" aria-current="page">SLOs</a>' in html
    assert '<a href="/slos/signals-latency">signals-latency</a>' in html
    assert "✕</span>1 failing" in html and "–</span>1 without data" in html
    assert "Failing · 80.00 %" in html
    assert "95 % of events end to end within 2,000 ms" in html
    # 20 bad of 200 events in 30 days, 10 allowed: overspent by 100 %.
    assert "overspent by 100.0 %" in html
    assert '<div class="burn-mild"><dt>5m</dt><dd>4.0×</dd>' in html
    assert '<div class="bad"><dt>1h</dt><dd>80.00 %</dd>' in html
    fragment = client.get("/slos", headers={**HTML, "HX-Request": "true", "HX-Target": "slo-list"})
    assert fragment.text.lstrip().startswith('<div id="slo-list"')
    assert "<html" not in fragment.text


def test_one_slo_with_its_history_and_definition(client: TestClient, clock: FixedClock) -> None:
    seed(client, clock)
    page = client.get("/slos/signals-latency?range=24h", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "<title>SLO signals-latency · flowdeck</title>" in html
    assert 'data-slo-chart="sli"' in html
    assert '<a href="?range=24h" aria-current="true">24 hours</a>' in html
    assert "<dt>Threshold</dt><dd>2,000 ms (flow.e2e_latency_ms)</dd>" in html
    start = html.index('<script id="slo-data" type="application/json">') + 46
    data = orjson.loads(html[start : html.index("</script>", start)])
    assert data["objective"] == 95.0 and data["range"] == "24h" and data["step"] == 900
    assert [(p["good"], p["total"]) for p in data["points"]] == [(100.0, 100.0), (80.0, 100.0)]
    assert data["points"][1]["sli"] == 80.0
    fragment = client.get(
        "/slos/signals-latency", headers={**HTML, "HX-Request": "true", "HX-Target": "slo-now"}
    )
    assert fragment.text.lstrip().startswith('<section id="slo-now"')
    # The run-based SLO without runs: no data, and says so.
    quiet = client.get("/slos/sales-success", headers=HTML).text
    assert "No data" in quiet and "No runs in the last 7 days." in quiet


def test_unknown_slo_and_range(client: TestClient, clock: FixedClock) -> None:
    seed(client, clock)
    missing = client.get("/slos/nope", headers=HTML)
    assert missing.status_code == 404
    assert "SLO &#39;nope&#39; not found" in missing.text
    bad = client.get("/slos/signals-latency?range=1y", headers=HTML)
    assert bad.status_code == 422
    assert "range: must be one of 24h, 7d, 30d" in bad.text
