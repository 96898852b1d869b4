"""Incidents end to end on both backends: a declared flow and its metric points in through
the API, detection ticks, the incidents out of GET /api/v1/incidents; the store's round trip
and the list's filters; 404 and 422."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.incidents.detect import DetectOptions, FlowSignals, StageSignal, detect
from flowdeck.incidents.model import Incident
from flowdeck.incidents.store import IncidentStore
from flowdeck.store import Store
from flowdeck.store.sql import SqlStore
from tests.api.conftest import services_of
from tests.conftest import FixedClock
from tests.flows.conftest import series
from tests.incidents.conftest import tick

API = "/api/v1/incidents"


def declare(client: TestClient) -> None:
    body = {
        "title": "Market signals",
        "stages": [
            {"name": "ingest", "queue_capacity": 100, "capacity_per_s": 50},
            {"name": "enrich", "queue_capacity": 1000, "capacity_per_s": 5},
            {"name": "store", "queue_capacity": 100},
        ],
    }
    answer = client.put("/api/v1/flows/ms", json=body)
    assert answer.status_code in (200, 201), answer.text


def report(client: TestClient, clock: FixedClock, enrich_queue: float) -> None:
    """A minute of reports up to the clock: 10 events/s through ingest and store; enrich
    takes 10/s and finishes 4/s, its queue at ``enrich_queue``."""
    now = clock.now.timestamp()
    minute = [float(t) for t in range(int(now) - 60, int(now))]
    points = [
        series("flow.arrivals", minute, [10] * 60, stage="ingest"),
        series("flow.processed", minute, [10] * 60, stage="ingest"),
        series("flow.queue_depth", [now - 1], [5], stage="ingest"),
        series("flow.arrivals", minute, [10] * 60, stage="enrich"),
        series("flow.processed", minute, [4] * 60, stage="enrich"),
        series("flow.queue_depth", [now - 1], [enrich_queue], stage="enrich"),
        series("flow.arrivals", minute, [4] * 60, stage="store"),
        series("flow.processed", minute, [4] * 60, stage="store"),
        series("flow.queue_depth", [now - 1], [0], stage="store"),
        series("flow.e2e_latency_ms", [now - 2] * 10, [3000.0] * 10, signal="sales_activity"),
        series("flow.events", minute, [4] * 60, signal="sales_activity"),
    ]
    answer = client.post("/api/v1/metrics/points", json=points)
    assert answer.status_code == 200, answer.text


def incidents(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(API, params=params)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_queue_overflow_opens_and_closes_through_detection(
    client: TestClient, clock: FixedClock
) -> None:
    declare(client)
    report(client, clock, 2500)
    assert tick(client).opened == ()  # held for 0 s of 120
    clock.now += timedelta(seconds=60)
    report(client, clock, 2600)
    assert tick(client).opened == ()
    clock.now += timedelta(seconds=60)
    report(client, clock, 3000)
    out = tick(client)
    assert [i.kind for i in out.opened] == ["queue_overflow"]
    [item] = incidents(client, state="open")
    assert (item["pipeline"], item["stage"], item["state"], item["bottleneck"]) == (
        "ms",
        "enrich",
        "open",
        "enrich",
    )
    assert item["severity"] == "critical"  # 3× the capacity
    assert item["summary"].startswith(
        "Queue overflow at enrich in ms since "
        f"{(clock.now - timedelta(seconds=120)).strftime('%Y-%m-%d %H:%M')} UTC: 3,000 events "
        "wait at enrich, 3.0× its queue capacity of 1,000."
    )
    assert "it finishes 4.0/s while 10/s arrive (declared capacity 5.0/s)" in item["cause"]
    assert "end-to-end latency p95 3.0 s" in item["impact"]
    assert item["links"] == {
        "self": f"/incidents/{item['id']}",
        "flow": "/flows/ms",
        "slo": None,
    }
    # The alert engine sees it open.
    svc = services_of(client)
    assert svc.incidents is not None
    [fact] = svc.incidents.facts(clock.now)
    assert (fact.incident_id, fact.open, fact.kind, fact.stage) == (
        item["id"],
        True,
        "queue_overflow",
        "enrich",
    )
    # Recovery: the queue drains; the incident closes after 5 minutes of calm.
    clock.now += timedelta(seconds=30)
    report(client, clock, 200)
    tick(client)
    one = client.get(f"{API}/{item['id']}").json()
    assert (one["state"], one["recovering"]) == ("open", True)
    assert one["timeline"][-1]["what"] == "recovering"
    for _ in range(5):
        clock.now += timedelta(seconds=60)
        report(client, clock, 100)
        tick(client)
    one = client.get(f"{API}/{item['id']}").json()
    assert one["state"] == "closed"
    assert [e["what"] for e in one["timeline"]] == [
        "began",
        "opened",
        "recovering",
        "closed",
    ]
    assert incidents(client, state="open") == []
    assert [i["id"] for i in incidents(client, state="closed")] == [item["id"]]
    [fact] = svc.incidents.facts(clock.now)
    assert fact.open is False


def test_a_stage_that_stops_reporting_is_stalled(client: TestClient, clock: FixedClock) -> None:
    declare(client)
    report(client, clock, 10)
    tick(client)
    # store goes quiet; ingest and enrich go on.
    for _ in range(6):
        clock.now += timedelta(seconds=60)
        now = clock.now.timestamp()
        minute = [float(t) for t in range(int(now) - 60, int(now))]
        points = [
            series("flow.arrivals", minute, [10] * 60, stage=stage)
            for stage in ("ingest", "enrich")
        ] + [series("flow.processed", minute, [10] * 60, stage=s) for s in ("ingest", "enrich")]
        assert client.post("/api/v1/metrics/points", json=points).status_code == 200
        tick(client)
    [item] = incidents(client)
    assert (item["kind"], item["stage"], item["title"]) == (
        "stalled_stage",
        "store",
        "Stalled stage: store",
    )
    assert "No points from store for" in item["summary"]


def make_incident(pipeline: str = "ms", at_s: int = 0, depth: float = 1500) -> Incident:
    base = FixedClock().now + timedelta(seconds=at_s)
    flow = FlowSignals(
        "default",
        pipeline,
        (StageSignal("enrich", 1000, 5.0, depth, 600.0, 240.0, 0.0, 800.0, base),),
    )
    opts = DetectOptions(hold_s=0)
    [inc] = detect([flow], [], [], {}, base, opts).opened
    return inc


def test_the_store_keeps_every_field_on_both_backends(store: Store) -> None:
    assert isinstance(store, SqlStore)
    db = IncidentStore(store)
    inc = make_incident()
    db.save([inc])
    assert db.get_incident(inc.id) == inc
    # Written again (as detection does each tick): replaced, not doubled.
    moved = detect(
        [
            FlowSignals(
                "default",
                "ms",
                (StageSignal("enrich", 1000, 5.0, 300.0, 600.0, 600.0, 0.0, 80.0, inc.opened_at),),
            )
        ],
        [],
        [inc],
        {},
        inc.opened_at + timedelta(seconds=10),
    ).updated
    db.save(moved)
    assert db.get_incident(inc.id) == moved[0]
    assert db.get_incident(inc.id).recovering_since is not None
    assert len(db.list_incidents()) == 1


def test_advance_reads_the_open_ones_and_writes_the_answer(store: Store) -> None:
    assert isinstance(store, SqlStore)
    db = IncidentStore(store)
    first = make_incident("a")
    db.save([first])
    seen: list[list[str]] = []

    def decide(open_now: list[Incident]) -> tuple[int, list[Incident]]:
        seen.append([i.id for i in open_now])
        return 7, [make_incident("b", at_s=5)]

    assert db.advance(decide) == 7
    assert seen == [[first.id]]
    assert sorted(i.pipeline for i in db.list_incidents("open")) == ["a", "b"]


def test_the_list_filters(client: TestClient) -> None:
    svc = services_of(client)
    assert svc.incidents is not None
    a, b = make_incident("a"), make_incident("b", at_s=60)
    db = svc.incidents.db
    svc.writer.submit_call(lambda: db.save([a, b])).result()  # writes go through the writer
    assert [i["pipeline"] for i in incidents(client)] == ["b", "a"]  # newest first
    assert [i["pipeline"] for i in incidents(client, pipeline="a")] == ["a"]
    assert incidents(client, pipeline="a", project="other") == []
    assert len(incidents(client, kind="queue_overflow", state="open")) == 2
    assert incidents(client, kind="missed_slo") == []
    assert [i["pipeline"] for i in incidents(client, limit="1")] == ["b"]
    assert client.get(API).json()["open"] == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"state": "opened"}, "state: must be open, closed or all, got 'opened'"),
        (
            {"kind": "overflow"},
            "kind: must be one of queue_overflow, stalled_stage, missed_slo, got 'overflow'",
        ),
        ({"limit": "0"}, "limit: must be a whole number from 1 to 1000, got '0'"),
        ({"limit": "ten"}, "limit: must be a whole number from 1 to 1000, got 'ten'"),
        ({"pipeline": "p" * 201}, "pipeline: must be at most 200 characters"),
    ],
)
def test_bad_filters_are_refused_by_name(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    answer = client.get(API, params=params)
    assert answer.status_code == 422
    assert answer.json()["message"] == message


def test_an_unknown_incident_is_404(client: TestClient) -> None:
    answer = client.get(f"{API}/nope")
    assert answer.status_code == 404
    assert answer.json() == {"message": "incident 'nope' not found"}
