"""Alerting's pages and the sources pages in-process (no browser): the bell, the notification
centre, alerts with acknowledgement and silences, rules, channels with their test button,
sources. Forms post like a browser (form encoding) and are answered with a redirect."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowdeck.alerts.service import AlertService
from flowdeck.api.app import create_app
from flowdeck.settings import Settings
from tests.alerts.receivers import HttpReceiver, http_receiver
from tests.api.conftest import as_json, services_of
from tests.conftest import T0, FixedClock, run
from tests.servers import free_port

HTML = {"Accept": "text/html"}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


@pytest.fixture
def client(tmp_path: Path, receiver: HttpReceiver) -> Iterator[TestClient]:
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "channels:\n"
        f"  - {{name: ops-hook, type: webhook, url: '{receiver.base}/hook'}}\n"
        "rules:\n"
        "  - name: two-failures\n"
        "    kind: consecutive_failures\n"
        "    group_wait: 0s\n"
        "    channels: [ops-hook]\n"
        "    remediation: Check the supplier feed, then rerun.\n"
        "  - {name: feeds-stale, kind: stale, max_age: 1h, selector: {pipeline: 'feed_*'}}\n"
    )
    app = create_app(
        Settings(
            database_url=f"duckdb://{tmp_path / 'flowdeck.duckdb'}",
            alerts_file=str(path),
            alert_tick_seconds=3600,
        ),
        clock=FixedClock(T0 + timedelta(hours=3)),
    )
    with TestClient(app, follow_redirects=False) as client:
        yield client


def alerting(client: TestClient) -> AlertService:
    alerts = services_of(client).alerts
    assert alerts is not None
    return alerts


def fail_twice(client: TestClient, pipeline: str = "load_acme") -> str:
    """Two failed runs: the consecutive_failures rule fires; the alert's fingerprint."""
    for i in (1, 2):
        report = run(
            pipeline,
            batch_id=f"b{i}",
            status="FAILED",
            started_at=T0 + timedelta(minutes=i),
            error_message="supplier feed missing",
            labels={"retailer": "acme"},
        )
        assert client.post("/api/v1/runs", json=as_json(report)).status_code == 200
    alerts = alerting(client)
    alerts.step(full=True)
    (alert,) = [a for a in alerts.db.alerts(states=("firing",)) if a.labels["pipeline"] == pipeline]
    return alert.fingerprint


def bell(client: TestClient) -> str:
    html = client.get("/notifications/bell").text
    found = re.search(r'data-unread="(\d+)"', html)
    assert found is not None, html
    return found.group(1)


def test_bell_counts_unread_and_mark_read(client: TestClient) -> None:
    assert bell(client) == "0"
    assert 'id="bell"' in client.get("/trends", headers=HTML).text
    fail_twice(client)
    assert bell(client) == "1"
    assert 'data-unread="1"' in client.get("/", headers=HTML).text  # every page has it
    page = client.get("/notifications", headers=HTML)
    assert "load_acme (prod) failed 2 times in a row: supplier feed missing" in page.text
    assert "Mark all read" in page.text
    (n,) = alerting(client).db.notifications(channel="app")
    read = client.post("/notifications/read", data={"id": n.id})
    assert (read.status_code, read.headers["location"]) == (303, "/notifications")
    assert bell(client) == "0"
    assert "Nothing unread." in client.get("/notifications?unread=1", headers=HTML).text
    fragment = client.get("/notifications", headers={"HX-Target": "notification-list"})
    assert fragment.text.lstrip().startswith('<section id="notification-list"')
    fail_twice(client, "load_globex")
    assert bell(client) == "1"
    assert client.post("/notifications/read", data={}).status_code == 303
    assert bell(client) == "0"


def test_alerts_page_acknowledge_and_silence(client: TestClient) -> None:
    fp = fail_twice(client)
    page = client.get("/alerts", headers=HTML).text
    firing = page.split('id="firing-h"')[1].split('id="pending-h"')[0]
    assert f'href="/alerts/{fp}"' in firing
    assert 'href="/sources/load_acme?env=prod&amp;project=default"' in firing
    detail = client.get(f"/alerts/{fp}", headers=HTML).text
    assert 'href="/runs/b2%3Aload_acme"' in detail
    assert 'href="/?batch=b2&amp;project=default"' not in detail  # a pipeline alert: no batch
    assert 'href="/runbook#consecutive_failures"' in detail
    assert "Check the supplier feed, then rerun." in detail
    assert "rule=two-failures\nproject=default\nenv=prod\npipeline=load_acme" in detail

    missing = client.post(f"/alerts/{fp}/acknowledge", data={"by": " ", "comment": "x"})
    assert missing.status_code == 422
    assert "Name is required: who acknowledges" in missing.text
    acked = client.post(f"/alerts/{fp}/acknowledge", data={"by": "ana", "comment": "on it"})
    assert (acked.status_code, acked.headers["location"]) == (
        303,
        f"/alerts/{fp}?done=acknowledged",
    )
    assert alerting(client).db.get_alert(fp).acknowledged_by == "ana"
    shown = client.get(acked.headers["location"], headers=HTML).text
    assert "Acknowledged by <strong>ana</strong>" in shown
    assert "Acknowledged: no repeats until it resolves." in shown

    bad = client.post(
        "/silences", data={"matchers": "retailer", "duration": "2h", "author": "", "comment": ""}
    )
    assert bad.status_code == 422
    assert "Matchers &#39;retailer&#39; is not a matcher" in bad.text
    assert "Name is required" in bad.text and "Comment is required" in bad.text
    made = client.post(
        "/silences",
        data={
            "matchers": "retailer=acme\nenv=prod",
            "duration": "4h",
            "author": "ana",
            "comment": "supplier maintenance",
        },
    )
    assert (made.status_code, made.headers["location"]) == (303, "/alerts?done=silenced#silences")
    (silence,) = alerting(client).db.silences()
    assert [str(m) for m in silence.matchers] == ["retailer=acme", "env=prod"]
    assert silence.ends_at - silence.starts_at == timedelta(hours=4)
    page = client.get("/alerts", headers=HTML).text
    silenced = page.split('id="silenced-h"')[1].split('id="resolved-h"')[0]
    assert f'href="/alerts/{fp}"' in silenced
    assert "supplier maintenance" in page
    later = client.post(
        "/silences",
        data={
            "matchers": "retailer=globex",
            "starts_at": "2026-11-21T22:00",
            "ends_at": "2026-11-22T02:00",
            "author": "ben",
            "comment": "maintenance window",
            "fingerprint": fp,
        },
    )
    assert later.headers["location"] == f"/alerts/{fp}?done=silenced"
    window = next(s for s in alerting(client).db.silences() if s.author == "ben")
    assert window.starts_at.isoformat() == "2026-11-21T22:00:00+00:00"
    expired = client.post(f"/silences/{silence.id}/expire")
    assert expired.headers["location"] == "/alerts?done=expired#silences"
    assert alerting(client).db.get_silence(silence.id).state(alerting(client).clock()) == "expired"


def test_rule_pages(client: TestClient) -> None:
    rule = {"name": "api-rule", "kind": "dq_error_rate", "threshold": 2}
    assert client.post("/api/v1/alert-rules", json=rule).status_code == 201
    page = client.get("/rules", headers=HTML).text
    assert 'href="/rules/two-failures"' in page and "Alerts file" in page
    file_rule = client.get("/rules/two-failures", headers=HTML).text
    assert "defined in the alerts file" in file_rule and "Delete rule" not in file_rule
    refused = client.post("/rules/two-failures/delete")
    assert refused.status_code == 409
    assert "rule &#39;two-failures&#39; is defined in the alerts file" in refused.text
    api_rule = client.get("/rules/api-rule", headers=HTML).text
    assert "Disable rule" in api_rule and "Delete rule" in api_rule
    off = client.post("/rules/api-rule/enabled", data={"enabled": "false"})
    assert off.headers["location"] == "/rules/api-rule?done=disabled"
    assert alerting(client).get_rule("api-rule").enabled is False
    assert "Enable rule" in client.get("/rules/api-rule", headers=HTML).text
    gone = client.post("/rules/api-rule/delete")
    assert gone.headers["location"] == "/rules?done=deleted+api-rule"
    assert client.get("/rules/api-rule", headers=HTML).status_code == 404


def test_channel_pages_test_button_and_failing_channel(
    client: TestClient, receiver: HttpReceiver
) -> None:
    dead = {"name": "dead-hook", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x"}
    assert client.post("/api/v1/channels", json=dead).status_code == 201
    # Before anything was sent through it.
    fresh = client.get("/channels/dead-hook", headers=HTML)
    assert fresh.status_code == 200
    assert "<dt>Last success (UTC)</dt><dd>never</dd>" in fresh.text
    ok = client.post("/channels/ops-hook/test", headers={"HX-Request": "true"})
    assert "Test delivered (HTTP 200)" in ok.text
    assert receiver.wait_for(1, "/hook")[0].json()["test"] is True
    for _ in range(2):
        failed = client.post("/channels/dead-hook/test", headers={"HX-Request": "true"})
        assert "Test failed: <code>cannot reach 127.0.0.1:" in failed.text
    page = client.get("/channels", headers=HTML).text
    dead_item = page.split('id="channel-dead-hook"')[1].split("</li>")[0]
    assert "failing" in page.split('id="channel-dead-hook"')[0].rsplit("<li", 1)[1]
    assert "Failing: 2 attempts since the last success" in dead_item
    ops_item = page.split('id="channel-ops-hook"')[1].split("</li>")[0]
    assert "Delivering" in ops_item
    detail = client.get("/channels/dead-hook", headers=HTML).text
    assert "Delete channel" in detail and "Failed" in detail
    plain = client.post("/channels/ops-hook/test")  # without htmx: the page with the result
    assert plain.status_code == 200 and "Test delivered" in plain.text
    assert "Delete channel" not in client.get("/channels/ops-hook", headers=HTML).text
    gone = client.post("/channels/dead-hook/delete")
    assert gone.headers["location"] == "/channels?done=deleted+dead-hook"


def test_sources_pages(client: TestClient) -> None:
    reports = [
        run(
            "feed_acme",
            batch_id=f"s{d}",
            started_at=T0 - timedelta(days=d),
            ended_at=T0 - timedelta(days=d) + timedelta(minutes=5),
            custom_stats={"sku_count": 100 + d},
            labels={"retailer": "acme"},
        )
        for d in (3, 2, 1)
    ]
    fresh_start = T0 + timedelta(hours=2)
    reports.append(
        run(
            "load_fresh",
            batch_id="s9",
            started_at=fresh_start,
            ended_at=fresh_start + timedelta(minutes=5),
        )
    )
    assert client.post("/api/v1/runs", json=[as_json(r) for r in reports]).status_code == 200
    page = client.get("/sources?field=sku_count", headers=HTML).text
    stale_row = page.split('<tr class="stale"')[1].split("</tr>")[0]
    assert 'href="/sources/feed_acme?env=prod&amp;project=default&amp;field=sku_count"' in stale_row
    assert "Stale" in stale_row and "over 1 h" in stale_row
    assert '<svg class="spark"' in stale_row
    assert 'aria-label="sku_count over the last 3 runs: from 101 to 103"' in stale_row
    fresh = page.split('<a href="/sources/load_fresh')[1].split("</tr>")[0]
    assert "Fresh" in fresh
    by_label = client.get("/sources?by=retailer&field=sku_count", headers=HTML).text
    assert "Label: retailer" in by_label and "(1 pipeline)" in by_label
    group_href = "/sources/by/retailer/acme?env=prod&amp;project=default&amp;field=sku_count"
    assert (
        f'data-href="{group_href}"' in by_label and f'<a href="{group_href}">acme</a>' in by_label
    )
    group = client.get("/sources/by/retailer/acme?env=prod&field=sku_count", headers=HTML)
    assert group.status_code == 200
    assert '<h1>acme <span class="sub">retailer · 1 pipeline · prod</span>' in group.text
    member = group.text.split('<tr class="stale"')[1].split("</tr>")[0]
    assert 'href="/sources/feed_acme?env=prod&amp;project=default&amp;field=sku_count"' in member
    assert "Stale" in member and "over 1 h (feeds-stale)" in member
    assert 'class="stale-banner"' in group.text
    assert 'data-chart="source-field"' in group.text
    chart = group.text.split('<script type="application/json" id="chart-data">')[1]
    assert chart.startswith('{"field":"sku_count","runs":[{"batch_id":"s3","status":"SUCCESS"')
    assert 'href="/api/v1/sources/by/retailer/acme?env=prod&amp;project=default' in group.text
    missing = client.get("/sources/by/retailer/nope", headers=HTML)
    assert missing.status_code == 404 and "source &#39;retailer=nope&#39; not found" in missing.text
    detail = client.get("/sources/feed_acme?env=prod&field=sku_count", headers=HTML).text
    assert 'rule <a href="/rules/feeds-stale">feeds-stale</a>' in detail
    assert 'data-chart="source-field"' in detail and '"field":"sku_count"' in detail
    assert client.get("/sources/nope", headers=HTML).status_code == 404
    bad = client.get("/sources?field=no%20way", headers=HTML)
    assert bad.status_code == 422 and "field: must be" in bad.text
