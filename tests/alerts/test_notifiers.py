"""Each notifier against a real receiver: an SMTP server (aiosmtpd) and a local HTTP server
standing in for Slack, Teams, PagerDuty and Opsgenie."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowdeck.alerts.dispatch import Outgoing
from flowdeck.alerts.engine import Alert
from flowdeck.alerts.notify import DeliveryError, deliver, sign
from flowdeck.alerts.rules import parse_channel, parse_rule
from flowdeck.alerts.service import AlertOptions, AlertService
from tests.alerts.receivers import HttpReceiver, http_receiver, smtp_receiver

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def sample(status: str = "firing") -> dict[str, Any]:
    rule = parse_rule(
        {
            "name": "acme-failing",
            "kind": "consecutive_failures",
            "severity": "critical",
            "remediation": "Check the supplier feed, then rerun.",
        }
    )
    alert = Alert(
        fingerprint="abc123",
        rule=rule.name,
        kind=rule.kind,
        severity="critical",
        state=status,
        labels={"project": "default", "pipeline": "ingest_acme", "env": "prod", "retailer": "acme"},
        subject={"run_id": "r9"},
        value=2,
        summary="ingest_acme (prod) failed 2 times in a row: <feed> missing",
        active_since=NOW - timedelta(minutes=10),
        fired_at=NOW - timedelta(minutes=10),
        resolved_at=NOW if status == "resolved" else None,
        evaluated_at=NOW,
    )
    out = Outgoing(rule, "acme-failing", {}, (alert,), repeat=False)
    service = AlertService.__new__(AlertService)
    service.options = AlertOptions(public_url="https://flowdeck.example.com")
    payload = service.payload(out, NOW)
    # As stored and sent: JSON types only.
    import orjson

    return dict(orjson.loads(orjson.dumps({**payload, "id": "n1"}, option=orjson.OPT_UTC_Z)))


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as r:
        yield r


def test_webhook_payload_and_signature(receiver: HttpReceiver) -> None:
    channel = parse_channel(
        {
            "name": "h",
            "type": "webhook",
            "url": receiver.url("/in"),
            "secret": "k",
            "headers": {"X-Team": "ops"},
        }
    )
    assert deliver(channel, sample(), NOW) == 200
    (got,) = receiver.requests
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-team"] == "ops"
    assert got.headers["x-flowdeck-timestamp"] == str(int(NOW.timestamp()))
    assert got.headers["x-flowdeck-signature"] == sign(
        "k", got.headers["x-flowdeck-timestamp"], got.body
    )
    assert got.headers["x-flowdeck-signature"] != sign(
        "other", got.headers["x-flowdeck-timestamp"], got.body
    )
    body = got.json()
    assert set(body) == {
        "version",
        "status",
        "repeat",
        "group_key",
        "group_labels",
        "rule",
        "alerts",
        "dashboard_url",
        "created_at",
        "id",
    }
    assert body["alerts"][0]["fired_at"] == "2026-11-23T05:50:00Z"


def test_slack_message_is_readable(receiver: HttpReceiver) -> None:
    channel = parse_channel({"name": "s", "type": "slack", "url": receiver.url("/slack")})
    deliver(channel, sample(), NOW)
    message = receiver.requests[0].json()
    header = message["blocks"][0]["text"]["text"]
    assert header == "🔴 [FIRING:1] acme-failing (critical)"
    section = message["blocks"][1]
    assert (
        section["text"]["text"]
        == "*Firing:* ingest_acme (prod) failed 2 times in a row: <feed> missing"
    )
    fields = [f["text"] for f in section["fields"]]
    assert fields == [
        "*Severity*\ncritical",
        "*Where*\ningest_acme, env prod, retailer=acme",
        "*Since*\n2026-11-23 05:50 UTC",
        "*Details*\n<https://flowdeck.example.com/alerts/abc123|open>",
    ]
    assert (
        message["blocks"][2]["text"]["text"] == "*What to do*\nCheck the supplier feed, then rerun."
    )
    assert message["blocks"][3]["elements"][0]["text"] == (
        "<https://flowdeck.example.com/runbook#consecutive_failures|Runbook> · "
        "<https://flowdeck.example.com/|Dashboard>"
    )
    deliver(channel, sample("resolved"), NOW)
    assert (
        receiver.requests[1].json()["blocks"][0]["text"]["text"]
        == "✅ [RESOLVED] acme-failing (critical)"
    )


def test_email_with_login_text_and_html() -> None:
    with smtp_receiver(auth=("flowdeck", "pw")) as smtp:
        channel = parse_channel(
            {
                "name": "mail",
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "tls": "none",
                "username": "flowdeck",
                "password": "pw",
                "from": "flowdeck@example.com",
                "to": ["ops@example.com", "lead@example.com"],
            }
        )
        assert deliver(channel, sample(), NOW) is None
        (message,) = smtp.messages
        assert smtp.envelopes == [("flowdeck@example.com", ["ops@example.com", "lead@example.com"])]
        assert smtp.logins == [("flowdeck", "pw")]
        assert message["Subject"] == "[FIRING:1] acme-failing (critical)"
        parts: list[Any] = list(message.get_payload())
        text, html = (part.get_payload(decode=True).decode() for part in parts)
        assert "FIRING: ingest_acme (prod) failed 2 times in a row: <feed> missing" in text
        assert "  since: 2026-11-23 05:50 UTC" in text
        assert "Runbook: https://flowdeck.example.com/runbook#consecutive_failures" in text
        assert "&lt;feed&gt; missing" in html
        assert '<a href="https://flowdeck.example.com/alerts/abc123">details</a>' in html


def test_email_to_a_server_that_is_not_there() -> None:
    from tests.servers import free_port

    channel = parse_channel(
        {
            "name": "m",
            "type": "email",
            "host": "127.0.0.1",
            "port": free_port(),
            "tls": "none",
            "from": "f@example.com",
            "to": "o@example.com",
            "timeout": "2s",
        }
    )
    with pytest.raises(DeliveryError, match=r"SMTP 127.0.0.1:\d+: .*refused"):
        deliver(channel, sample(), NOW)


def test_pagerduty_events_v2(receiver: HttpReceiver) -> None:
    channel = parse_channel(
        {"name": "pd", "type": "pagerduty", "routing_key": "R1", "url": receiver.url("/v2/enqueue")}
    )
    deliver(channel, sample(), NOW)
    deliver(channel, sample("resolved"), NOW)
    trigger, resolve = (r.json() for r in receiver.requests)
    assert trigger["routing_key"] == "R1"
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "abc123"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "ingest_acme, env prod, retailer=acme"
    assert resolve == {"routing_key": "R1", "event_action": "resolve", "dedup_key": "abc123"}


def test_opsgenie_create_and_close(receiver: HttpReceiver) -> None:
    channel = parse_channel(
        {"name": "og", "type": "opsgenie", "api_key": "K", "url": receiver.url("/v2/alerts")}
    )
    deliver(channel, sample(), NOW)
    deliver(channel, sample("resolved"), NOW)
    create, close = receiver.requests
    assert create.path == "/v2/alerts"
    assert create.headers["authorization"] == "GenieKey K"
    assert create.json()["alias"] == "abc123"
    assert create.json()["priority"] == "P1"
    assert close.path == "/v2/alerts/abc123/close?identifierType=alias"


def test_teams_adaptive_card(receiver: HttpReceiver) -> None:
    channel = parse_channel({"name": "t", "type": "teams", "url": receiver.url("/teams")})
    deliver(channel, sample(), NOW)
    card = receiver.requests[0].json()["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert card["body"][0]["text"] == "[FIRING:1] acme-failing (critical)"
    assert [a["title"] for a in card["actions"]] == ["Runbook", "Dashboard"]


def test_a_receiver_error_is_a_delivery_error(receiver: HttpReceiver) -> None:
    receiver.failures = [429]
    channel = parse_channel({"name": "s", "type": "slack", "url": receiver.url("/slack")})
    with pytest.raises(DeliveryError, match=r"HTTP 429 from 127\.0\.0\.1:") as info:
        deliver(channel, sample(), NOW)
    assert info.value.status_code == 429
