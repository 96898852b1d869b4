"""End to end through the public API: a retailer's ingestion reported with POST /api/v1/runs,
rules and channels from an alerts file, messages at real receivers. Each trouble gives
exactly one notification."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.alerts.notify import sign
from flowdeck.alerts.service import AlertService
from tests.alerts.receivers import HttpReceiver, http_receiver, wait_until
from tests.api.conftest import MakeClient, as_json, services_of
from tests.conftest import FixedClock

ALERTS = """
channels:
  - name: ops-hook
    type: webhook
    url: ${HOOK_URL}/hook
    secret: ${HOOK_SECRET}
  - name: ops-slack
    type: slack
    url: ${HOOK_URL}/slack
rules:
  - name: acme-failing
    kind: consecutive_failures
    n: 2
    selector: {env: prod, labels: {retailer: acme}}
    severity: critical
    group_wait: 0s
    channels: [ops-hook, ops-slack]
    remediation: Check the supplier feed, then rerun the batch.
  - name: acme-sku-drop
    kind: volume_drop
    field: sku_count
    drop_pct: 30
    window: 7
    selector: {labels: [retailer=acme]}
    severity: warning
    group_wait: 0s
    channels: [ops-hook]
  - name: acme-stale
    kind: stale
    max_age: 2h
    selector: {pipeline: "ingest_*", labels: {retailer: acme}}
    group_wait: 0s
    channels: [ops-hook]
"""


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def app(
    make_client: MakeClient,
    receiver: HttpReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> TestClient:
    path = tmp_path / "alerts.yaml"
    path.write_text(textwrap.dedent(ALERTS))
    monkeypatch.setenv("HOOK_URL", receiver.base)
    monkeypatch.setenv("HOOK_SECRET", "t0ps3cret")
    return make_client(
        alerts_file=str(path), public_url="https://flowdeck.example.com", alert_tick_seconds=3600
    )


def alerting(client: TestClient) -> AlertService:
    svc = services_of(client).alerts
    assert svc is not None
    return svc


class Retailer:
    """The acme retailer's daily ingestion, reported as a pipeline would."""

    def __init__(self, client: TestClient, clock: FixedClock) -> None:
        self.client = client
        self.clock = clock
        self.day = 0

    def ingest(self, status: str, pipeline: str = "ingest_acme", **fields: Any) -> None:
        self.day += 1
        self.clock.now += timedelta(minutes=30)  # a load every half hour
        started = self.clock.now - timedelta(minutes=20)
        report = {
            "run_id": f"{pipeline}-{self.day}",
            "pipeline": pipeline,
            "batch_id": f"day-{self.day}",
            "env": "prod",
            "status": status,
            "started_at": started,
            "ended_at": started + timedelta(minutes=15),
            "rows_read": 50_000,
            "rows_written": 50_000,
            "labels": {"retailer": "acme", "team": "retail"},
            **fields,
        }
        svc = alerting(self.client)
        before = svc.stats.evaluations
        answer = self.client.post("/api/v1/runs", json=as_json(report))
        assert answer.status_code == 200, answer.text
        # The engine hears of the commit on the event bus; wait until it has evaluated it.
        wait_until(lambda: svc.stats.evaluations > before, 10, "the engine to evaluate")
        svc.deliver_due(wait=True)


def test_two_failures_of_a_retailer_page_once(
    app: TestClient, clock: FixedClock, receiver: HttpReceiver
) -> None:
    acme = Retailer(app, clock)
    acme.ingest("SUCCESS")
    acme.ingest("FAILED", error_message="supplier feed missing")
    assert receiver.requests == []
    acme.ingest("FAILED", error_message="supplier feed missing")
    acme.ingest("FAILED", error_message="supplier feed missing")
    (hook,) = receiver.wait_for(1, "/hook")
    (slack,) = receiver.wait_for(1, "/slack")
    stamp = hook.headers["x-flowdeck-timestamp"]
    assert hook.headers["x-flowdeck-signature"] == sign("t0ps3cret", stamp, hook.body)
    payload = hook.json()
    assert payload["rule"]["name"] == "acme-failing"
    assert payload["alerts"][0]["summary"] == (
        "ingest_acme (prod) failed 2 times in a row: supplier feed missing"
    )
    assert payload["alerts"][0]["url"].startswith("https://flowdeck.example.com/alerts/")
    text = slack.json()["text"]
    assert "[FIRING:1] acme-failing (critical)" in text
    assert "where: ingest_acme, env prod, retailer=acme, team=retail" in text
    assert "Check the supplier feed, then rerun the batch." in text
    assert "Runbook: https://flowdeck.example.com/runbook#consecutive_failures" in text
    assert len(receiver.requests) == 2  # the third failure changed nothing
    # The success that follows resolves it, once per channel.
    acme.ingest("SUCCESS")
    resolved = receiver.wait_for(2, "/hook")[1].json()
    assert resolved["status"] == "resolved"
    assert len(receiver.wait_for(2, "/slack")) == 2
    assert len(receiver.requests) == 4


def test_a_sku_count_drop_notifies_once(
    app: TestClient, clock: FixedClock, receiver: HttpReceiver
) -> None:
    acme = Retailer(app, clock)
    for skus in (48_000, 48_500, 47_900, 48_200, 48_100, 48_300, 48_000):
        acme.ingest("SUCCESS", custom_stats={"sku_count": skus})
    assert receiver.requests == []
    acme.ingest("SUCCESS", custom_stats={"sku_count": 30_000})
    acme.ingest("SUCCESS", custom_stats={"sku_count": 29_000})
    (hook,) = receiver.wait_for(1, "/hook")
    alert = hook.json()["alerts"][0]
    assert hook.json()["rule"]["name"] == "acme-sku-drop"
    assert alert["summary"].startswith("ingest_acme (prod): sku_count 30,000 is 38% below")
    assert receiver.on("/slack") == []
    assert len(receiver.requests) == 1


def test_staleness_with_a_short_max_age_notifies_once(
    app: TestClient, clock: FixedClock, receiver: HttpReceiver
) -> None:
    acme = Retailer(app, clock)
    acme.ingest("SUCCESS")
    svc = alerting(app)
    clock.now += timedelta(hours=1)
    svc.step(tick=True)
    svc.deliver_due(wait=True)
    assert receiver.requests == []
    for _ in range(3):
        clock.now += timedelta(hours=1)
        svc.step(tick=True)
        svc.deliver_due(wait=True)
    (hook,) = receiver.wait_for(1, "/hook")
    assert hook.json()["rule"]["name"] == "acme-stale"
    assert "has not succeeded for" in hook.json()["alerts"][0]["summary"]
    assert len(receiver.requests) == 1
    # It shows in the API, and in the notification centre as unread.
    firing = app.get("/api/v1/alerts").json()["items"]
    assert [a["rule"] for a in firing] == ["acme-stale"]
    centre = app.get("/api/v1/notifications?channel=app").json()
    assert centre["unread"] == 1


def test_commits_close_together_are_evaluated_together(
    app: TestClient, clock: FixedClock, receiver: HttpReceiver
) -> None:
    svc = alerting(app)
    bus = services_of(app).bus
    acme = Retailer(app, clock)
    acme.ingest("SUCCESS")
    svc.options.step_gap_s = 30.0  # every commit below falls within the gap after it
    before, start = svc.stats.evaluations, bus.last_event_id
    for i in range(6):
        clock.now += timedelta(minutes=30)
        started = clock.now - timedelta(minutes=20)
        report = {
            "run_id": f"burst-{i}",
            "pipeline": f"ingest_burst_{i % 2}",
            "batch_id": f"burst-{i}",
            "env": "prod",
            "status": "FAILED",
            "started_at": started,
            "ended_at": started + timedelta(minutes=15),
            "labels": {"retailer": "acme"},
        }
        assert app.post("/api/v1/runs", json=as_json(report)).status_code == 200
    wait_until(lambda: bus.last_event_id >= start + 6, 10, "the commits on the bus")
    svc.kick()  # ends the wait for the gap, as a stop would
    wait_until(lambda: svc.stats.evaluations > before, 10, "the engine to evaluate")
    svc.deliver_due(wait=True)
    # Both pipelines failed three times in a row: each pages, from one evaluation.
    assert svc.stats.evaluations == before + 1

    def paged() -> set[str]:
        text = " ".join(r.body.decode() for r in receiver.requests if r.path == "/hook")
        return {p for p in ("ingest_burst_0", "ingest_burst_1") if p in text}

    assert wait_until(lambda: paged() == {"ingest_burst_0", "ingest_burst_1"}, 10, "pages")
