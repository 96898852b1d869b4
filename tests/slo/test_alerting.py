"""The app's wiring, both backends: the lifespan gives the alert engine the SLOs' burn
rates, so a slo_burn_rate rule fires on the tick, and its alert's page links the SLO."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.alerts.receivers import wait_until
from tests.api.conftest import MakeClient
from tests.conftest import FixedClock
from tests.slo.conftest import latencies

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def test_a_burning_slo_fires_through_the_running_app(
    make_client: MakeClient, clock: FixedClock
) -> None:
    client = make_client(alert_tick_seconds=0.2)
    body = {"pipeline": "market_signals", "kind": "latency", "objective": 99, "threshold_ms": 500}
    assert client.put("/api/v1/slos/fast", json=body).status_code == 201
    rule = {"name": "slo-page", "kind": "slo_burn_rate", "group_wait": "0s"}
    assert client.post("/api/v1/alert-rules", json=rule).status_code == 201
    latencies(client, clock.now - timedelta(minutes=2), [100.0] * 60 + [900.0] * 40)

    def firing() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.get("/api/v1/alerts").json()["items"]
        return [a for a in items if a["state"] == "firing"]

    # A tick may have kept the states from before the points for its 5 s (SloService).
    (alert,) = wait_until(firing, 20, "the burn-rate alert to fire")
    assert alert["rule"] == "slo-page"
    assert alert["labels"]["slo"] == "fast"
    assert alert["value"] == 40.0  # 40 % bad where 1 % is allowed
    page = client.get(f"/alerts/{alert['fingerprint']}", headers=HTML).text
    assert '<dt>SLO</dt><dd><a href="/slos/fast">fast</a></dd>' in page
    assert "40.0× the allowed error-budget pace (long window)" in page
    # The SLO goes: its alert resolves.
    assert client.delete("/api/v1/slos/fast").status_code == 204
    wait_until(lambda: not firing(), 10, "the alert of the deleted SLO to resolve")
