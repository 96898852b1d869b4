"""The app's wiring, both backends: an SLO missed opens an incident (read from the SLO
service), and the alert engine's incident rule fires for it through the running app, then
resolves when the incident closes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.alerts.receivers import wait_until
from tests.api.conftest import MakeClient
from tests.conftest import FixedClock
from tests.incidents.conftest import tick
from tests.slo.conftest import latencies


def test_a_missed_slo_opens_an_incident_that_fires_and_resolves(
    make_client: MakeClient, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWDECK_INCIDENT_TICK_SECONDS", "0")
    monkeypatch.setenv("FLOWDECK_INCIDENT_HOLD_SECONDS", "90")
    monkeypatch.setenv("FLOWDECK_INCIDENT_CALM_SECONDS", "60")
    client = make_client(alert_tick_seconds=0.2)
    body = {"pipeline": "market_signals", "kind": "latency", "objective": 99, "threshold_ms": 500}
    assert client.put("/api/v1/slos/fast", json=body).status_code == 201
    rule = {"name": "incidents", "kind": "incident", "group_wait": "0s"}
    assert client.post("/api/v1/alert-rules", json=rule).status_code == 201
    latencies(client, clock.now - timedelta(minutes=2), [100.0] * 60 + [900.0] * 40)
    assert tick(client).opened == ()  # failing for 60 s of the 90 s hold
    clock.now += timedelta(seconds=31)
    assert len(tick(client).opened) == 1
    [item] = client.get("/api/v1/incidents", params={"state": "open"}).json()["items"]
    assert (item["kind"], item["slo"], item["pipeline"]) == ("missed_slo", "fast", "market_signals")
    assert item["links"]["slo"] == "/slos/fast"

    def alerts(state: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.get("/api/v1/alerts", params={"state": state}).json()[
            "items"
        ]
        return [a for a in items if a["rule"] == "incidents"]

    (alert,) = wait_until(lambda: alerts("firing"), 10, "the incident alert to fire")
    assert alert["labels"]["incident_kind"] == "missed_slo"
    assert alert["summary"] == item["summary"]
    # The SLO goes: the incident closes at once, and its alert resolves.
    assert client.delete("/api/v1/slos/fast").status_code == 204
    [closed] = tick(client).closed
    assert closed.id == item["id"]
    wait_until(lambda: alerts("resolved"), 10, "the incident alert to resolve")
