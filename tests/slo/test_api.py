"""The SLO API on both backends: CRUD, 422s naming the field and the rule, and each kind's
state read from what pipelines reported."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.slo.service import SloService
from flowdeck.store.sql import SqlStore
from tests.api.conftest import services_of
from tests.conftest import FixedClock
from tests.slo.conftest import events, latencies, post_runs

LATENCY: dict[str, Any] = {
    "pipeline": "market_signals",
    "kind": "latency",
    "objective": 95,
    "threshold_ms": 2000,
    "description": "signals reach the dashboard within 2 s",
}


def test_put_get_list_delete(client: TestClient) -> None:
    created = client.put("/api/v1/slos/signals-latency", json=LATENCY)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "signals-latency"
    assert body["project"] == "default"
    assert body["window"] == "1h"
    assert body["objective_text"] == "95 % of events end to end within 2,000 ms"
    one = client.get("/api/v1/slos/signals-latency")
    assert one.status_code == 200
    got = one.json()
    assert got["threshold_ms"] == 2000.0
    assert got["state"]["status"] == "no_data"
    assert got["state"]["passing"] is True
    # What GET answered may be PUT back; a change replaces (200).
    again = client.put("/api/v1/slos/signals-latency", json={**got, "objective": 99})
    assert again.status_code == 200, again.text
    assert client.get("/api/v1/slos/signals-latency").json()["objective"] == 99.0
    listed = client.get("/api/v1/slos").json()["items"]
    assert [s["name"] for s in listed] == ["signals-latency"]
    assert client.get("/api/v1/slos?pipeline=other").json()["items"] == []
    assert client.delete("/api/v1/slos/signals-latency").status_code == 204
    assert client.get("/api/v1/slos/signals-latency").status_code == 404
    assert client.delete("/api/v1/slos/signals-latency").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {**LATENCY, "objective": 100},
            "objective: must be a number from 50 up to (not including) 100, in percent",
        ),
        (
            {**LATENCY, "objective": 42},
            "objective: must be a number from 50 up to (not including) 100, in percent",
        ),
        ({**LATENCY, "objective": "high"}, "objective: must be a number"),
        (
            {**LATENCY, "kind": "speed"},
            "kind: must be one of latency, throughput, success_rate, freshness",
        ),
        (
            {k: v for k, v in LATENCY.items() if k != "threshold_ms"},
            "threshold_ms: is required for latency SLOs (milliseconds, above 0)",
        ),
        (
            {**LATENCY, "threshold_ms": 0},
            "threshold_ms: must be above 0 and at most 1,000,000,000 ms",
        ),
        ({**LATENCY, "max_age": "4h"}, "max_age: is not a field of latency SLOs"),
        ({**LATENCY, "colour": "red"}, "colour: is not a known field"),
        ({**LATENCY, "window": "2h"}, "window: must be one of 1h, 24h, 7d, 30d"),
        ({**LATENCY, "name": "other"}, "name: must be 'x' (the name in the path)"),
        (
            {"kind": "throughput", "pipeline": "p", "objective": 99},
            "min_events: is required for throughput SLOs (events per cycle, 1 or more)",
        ),
        (
            {
                "kind": "throughput",
                "pipeline": "p",
                "objective": 99,
                "min_events": 5,
                "cycle": "90s",
            },
            "cycle: must be whole minutes that divide a day, from 1m to 1d (1m, 5m, 15m, 1h, 1d…)",
        ),
        (
            {"kind": "throughput", "pipeline": "p", "objective": 99, "min_events": 2.5},
            "min_events: must be a whole number",
        ),
        (
            {"kind": "freshness", "pipeline": "p", "objective": 99, "max_age": "soon"},
            "max_age: must be a duration such as 30s, 5m, 4h or 1d",
        ),
        ({"kind": "success_rate", "objective": 99}, "pipeline: is required"),
    ],
)
def test_bad_definitions_are_refused_by_field_and_rule(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    got = client.put("/api/v1/slos/x", json=body)
    assert got.status_code == 422, got.text
    assert got.json()["message"] == message
    assert client.get("/api/v1/slos").json()["items"] == []  # nothing written


def test_a_bad_name_and_a_body_that_is_no_object(client: TestClient) -> None:
    got = client.put("/api/v1/slos/-x", json=LATENCY)
    assert got.status_code == 422
    assert got.json()["message"].startswith("name: must start with a letter or digit")
    got = client.put("/api/v1/slos/x", json=[LATENCY])
    assert got.json()["message"] == "body: must be a JSON object"


def test_latency_state_from_the_sketch(client: TestClient, clock: FixedClock) -> None:
    now = clock.now
    client.put("/api/v1/slos/lat", json=LATENCY)
    # 10 minutes ago: 100 events, 90 within 2 s; 3 hours ago: 100 events, all within.
    latencies(client, now - timedelta(minutes=10), [500.0] * 90 + [3000.0] * 10)
    latencies(client, now - timedelta(hours=3), [800.0] * 100)
    s = client.get("/api/v1/slos/lat").json()["state"]
    assert s["status"] == "failing"
    assert s["compliance"]["1h"] == pytest.approx(90.0)
    assert s["compliance"]["24h"] == pytest.approx(95.0)
    assert s["sli"] == pytest.approx(90.0)
    assert s["units"]["24h"] == {"good": 190.0, "total": 200.0}
    # 10 % bad where 5 % is allowed: burn 2 over 30 min, 1 h and 6 h; nothing in 5 min.
    assert s["burn_rates"] == {
        "5m": None,
        "30m": pytest.approx(2.0),
        "1h": pytest.approx(2.0),
        "6h": pytest.approx(1.0),
    }
    # 10 bad of the 30 days' 200 events, where 5 % (10) are allowed: the budget is spent.
    assert s["budget_remaining"] == pytest.approx(0.0, abs=1e-9)
    # The bad events came in the minute ending 00:51.
    assert now.isoformat() == "2026-11-21T01:00:00+00:00"
    assert s["failing_since"] == "2026-11-21T00:51:00Z"
    # Another replica (or this one after a restart) works out the same time.
    store = services_of(client).store
    assert isinstance(store, SqlStore)
    (again,) = SloService(store).states(now)
    assert again.failing_since == datetime(2026, 11, 21, 0, 51, tzinfo=UTC)
    # An hour later the bad minutes have left the 1 h window: passing again.
    clock.now = now + timedelta(hours=1)
    s = client.get("/api/v1/slos/lat").json()["state"]
    assert s["status"] == "no_data" and s["passing"] is True
    assert s["compliance"]["24h"] == pytest.approx(95.0)


def test_throughput_counts_cycles_with_enough_events(client: TestClient, clock: FixedClock) -> None:
    now = clock.now.replace(second=0, microsecond=0)
    clock.now = now
    body = {
        "pipeline": "market_signals",
        "kind": "throughput",
        "objective": 90,
        "min_events": 100,
        "cycle": "5m",
    }
    assert client.put("/api/v1/slos/tp", json=body).status_code == 201
    start = now - timedelta(minutes=60)
    # 12 five-minute cycles in the last hour: 10 with 120 events, one with 50, one silent.
    counts = {}
    for i in range(12):
        at = start + timedelta(minutes=5 * i, seconds=30)
        if i == 4:
            counts[at] = 50.0
        elif i != 7:
            counts[at] = 120.0
    events(client, counts)
    s = client.get("/api/v1/slos/tp").json()["state"]
    assert s["units"]["1h"] == {"good": 10.0, "total": 12.0}
    assert s["compliance"]["1h"] == pytest.approx(100 * 10 / 12)
    assert s["status"] == "failing"  # 83.3 % < 90 %
    # The 5-minute window reads the last cycle that ended (00:55–01:00, 120 events): good.
    assert s["burn_rates"]["5m"] == 0.0
    # 2 bad cycles of 12 where 10 % are allowed: burn 1.67 over the hour.
    assert s["burn_rates"]["1h"] == pytest.approx((2 / 12) / 0.10)
    history = client.get("/api/v1/slos/tp/history?range=24h").json()
    assert sum(p["total"] for p in history["points"]) == 12
    assert sum(p["good"] for p in history["points"]) == 10


def test_success_rate_and_freshness_read_runs(client: TestClient, clock: FixedClock) -> None:
    now = clock.now
    h = timedelta(hours=1)
    post_runs(
        client,
        [
            (now - 30 * h, "SUCCESS"),
            (now - 20 * h, "FAILED"),
            (now - 10 * h, "SUCCESS"),
            (now - 2 * h, "SUCCESS"),
        ],
    )
    rate = {
        "pipeline": "load_sales",
        "env": "prod",
        "kind": "success_rate",
        "objective": 90,
        "window": "24h",
    }
    assert client.put("/api/v1/slos/rate", json=rate).status_code == 201
    s = client.get("/api/v1/slos/rate").json()["state"]
    assert s["units"]["24h"] == {"good": 2.0, "total": 3.0}
    assert s["status"] == "failing"
    assert s["units"]["30d"] == {"good": 3.0, "total": 4.0}
    fresh = {
        "pipeline": "load_sales",
        "kind": "freshness",
        "objective": 90,
        "max_age": "6h",
        "window": "24h",
    }
    assert client.put("/api/v1/slos/fresh", json=fresh).status_code == 201
    s = client.get("/api/v1/slos/fresh").json()["state"]
    # Last 24 h: fresh from the success 10 h ago for 6 h, and from the one 2 h ago until now
    # (2 h); before that, the success 30 h ago was fresh until 24 h ago → 8 of 24 hours.
    assert s["units"]["24h"] == {"good": 8 * 3600.0, "total": 24 * 3600.0}
    # An env with no runs: never ran, nothing to count.
    other = {**fresh, "env": "dev"}
    client.put("/api/v1/slos/fresh-dev", json=other)
    assert client.get("/api/v1/slos/fresh-dev").json()["state"]["status"] == "no_data"


def test_history_range_is_checked(client: TestClient) -> None:
    client.put("/api/v1/slos/lat", json=LATENCY)
    got = client.get("/api/v1/slos/lat/history?range=1y")
    assert got.status_code == 422
    assert got.json()["message"] == "range: must be one of 24h, 7d, 30d"
    assert client.get("/api/v1/slos/nope/history").status_code == 404


def test_kept_states_expire_in_real_time_too(
    client: TestClient, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """States are kept for cache_s seconds; a clock that stands still (a test's, or a
    replay's) must not keep the states from before the points that came since."""
    body = {"pipeline": "market_signals", "kind": "latency", "objective": 99, "threshold_ms": 500}
    assert client.put("/api/v1/slos/fast", json=body).status_code == 201
    store = services_of(client).store
    assert isinstance(store, SqlStore)
    slos = SloService(store, cache_s=5.0)
    (before,) = slos.states(clock.now)
    assert before.all_burn_rates["5m"] is None  # no points yet
    latencies(client, clock.now - timedelta(minutes=2), [100.0] * 60 + [900.0] * 40)
    (kept,) = slos.states(clock.now)
    assert kept is before  # within the 5 s
    real = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: real + 6)
    (fresh,) = slos.states(clock.now)  # the clock has not moved; real time has
    assert fresh.all_burn_rates["5m"] == pytest.approx(40.0)
