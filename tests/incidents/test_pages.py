"""The incident pages in-process (both backends): the list with its filters and live
fragment, one incident with its summary, timeline and links, and the error pages."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from flowdeck.incidents.detect import (
    DetectOptions,
    FlowSignals,
    SloSignal,
    StageSignal,
    detect,
)
from flowdeck.incidents.model import Incident
from tests.api.conftest import services_of
from tests.conftest import FixedClock

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def seed(client: TestClient, clock: FixedClock) -> tuple[Incident, Incident]:
    """An open queue overflow at enrich in ms, and a missed SLO in ms closed since."""
    now = clock.now
    flow = FlowSignals(
        "default",
        "ms",
        (
            StageSignal("ingest", 100, 50.0, 3.0, 600.0, 600.0, 0.0, 20.0, now),
            StageSignal("enrich", 1000, 5.0, 2400.0, 600.0, 240.0, 0.0, 900.0, now),
        ),
        e2e_p95_ms=4200.0,
        events=240.0,
    )
    slo = SloSignal("default", "ms", "ms-latency", "latency", 95.0, False, 90.0, 20.0, now)
    opts = DetectOptions(hold_s=0, calm_s=0)
    first = detect([flow], [slo], [], {}, now, opts)
    overflow = next(i for i in first.opened if i.kind == "queue_overflow")
    missed = next(i for i in first.opened if i.kind == "missed_slo")
    passing = SloSignal("default", "ms", "ms-latency", "latency", 95.0, True, 99.0, 30.0)
    later = now + timedelta(seconds=30)
    recovering = detect([flow], [passing], [missed], {}, later, opts).updated[0]
    closed = detect([flow], [passing], [recovering], {}, later, opts).closed[0]
    stages = [{"name": "ingest", "queue_capacity": 100}, {"name": "enrich", "queue_capacity": 1000}]
    answer = client.put("/api/v1/flows/ms", json={"title": "MS", "stages": stages})
    assert answer.status_code == 201, answer.text
    svc = services_of(client)
    assert svc.incidents is not None
    db = svc.incidents.db
    svc.writer.submit_call(lambda: db.save([overflow, closed])).result()
    return overflow, closed


def test_the_list_shows_open_then_closed(client: TestClient, clock: FixedClock) -> None:
    overflow, closed = seed(client, clock)
    page = client.get("/incidents", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "<title>Incidents · flowdeck</title>" in html
    assert 'aria-current="page">Incidents</a>' in html
    assert html.index(f'href="/incidents/{overflow.id}"') < html.index(
        f'href="/incidents/{closed.id}"'
    )
    assert ">Queue overflow at enrich</a>" in html
    assert ">SLO ms-latency missed</a>" in html
    assert 'href="/flows/ms">ms</a> › enrich' in html
    assert 'SLO <a href="/slos/ms-latency">ms-latency</a>' in html
    assert "<strong>Do:</strong> Add capacity to enrich" in html
    assert 'data-live="alerts"' in html
    # Filters: only the open ones, only one kind.
    open_only = client.get("/incidents", params={"state": "open"}, headers=HTML).text
    assert overflow.id in open_only and closed.id not in open_only
    slo_only = client.get("/incidents", params={"kind": "missed_slo"}, headers=HTML).text
    assert overflow.id not in slo_only and closed.id in slo_only
    # The live refresh asks for the list alone.
    part = client.get(
        "/incidents", params={"state": "open"}, headers={**HTML, "HX-Target": "incident-list"}
    )
    assert part.text.lstrip().startswith('<div id="incident-list"')
    assert 'data-refresh-url="/incidents?state=open"' in part.text
    assert "<html" not in part.text


def test_one_incident_has_its_summary_timeline_and_links(
    client: TestClient, clock: FixedClock
) -> None:
    overflow, closed = seed(client, clock)
    page = client.get(f"/incidents/{overflow.id}", headers=HTML)
    assert page.status_code == 200
    html = page.text
    assert "<title>Incident: Queue overflow at enrich · flowdeck</title>" in html
    assert "2,400 events wait at enrich, 2.4× its queue capacity of 1,000." in html
    assert "Likely cause</dt>" in html and "enrich is the bottleneck" in html
    assert "Bottleneck: enrich" in html
    assert 'href="/flows/ms">Open the live flow of ms</a>' in html
    assert "End-to-end latency p95</dt><dd>4.2 s</dd>" in html
    assert html.count('<li class="tl-') == 2  # began, opened
    slo_page = client.get(f"/incidents/{closed.id}", headers=HTML).text
    assert 'href="/slos/ms-latency">Open SLO ms-latency</a>' in slo_page
    assert [
        what
        for what in ("Closed", "Recovering", "Opened", "Began")
        if f"<strong>{what}</strong>" in slo_page
    ] == [
        "Closed",
        "Recovering",
        "Opened",
        "Began",
    ]
    assert slo_page.index("<strong>Closed</strong>") < slo_page.index("<strong>Began</strong>")
    part = client.get(f"/incidents/{overflow.id}", headers={**HTML, "HX-Target": "incident-body"})
    assert part.text.lstrip().startswith('<div id="incident-body"')


def test_an_incident_of_a_pipeline_without_a_flow_links_its_slo_only(
    client: TestClient, clock: FixedClock
) -> None:
    slo = SloSignal("default", "batch_p", "fresh", "freshness", 99.0, False, 0.0, -3.0, clock.now)
    [inc] = detect([], [slo], [], {}, clock.now, DetectOptions(hold_s=0)).opened
    assert "The 30-day error budget is spent" in inc.impact
    svc = services_of(client)
    assert svc.incidents is not None
    db = svc.incidents.db
    svc.writer.submit_call(lambda: db.save([inc])).result()
    html = client.get(f"/incidents/{inc.id}", headers=HTML).text
    assert "/flows/" not in html
    assert 'href="/slos/fresh">Open SLO fresh</a>' in html
    listing = client.get("/incidents", headers=HTML).text
    assert "/flows/" not in listing
    [item] = client.get("/api/v1/incidents").json()["items"]
    assert item["links"] == {"self": f"/incidents/{inc.id}", "flow": None, "slo": "/slos/fresh"}


def test_error_pages(client: TestClient) -> None:
    missing = client.get("/incidents/nope", headers=HTML)
    assert missing.status_code == 404
    assert "incident &#39;nope&#39; not found" in missing.text
    bad = client.get("/incidents", params={"state": "bad"}, headers=HTML)
    assert bad.status_code == 422
    assert "state: must be open, closed or all, got &#39;bad&#39;" in bad.text
