"""Notifiers: one message about one group of alerts, rendered for each kind of channel and
delivered over HTTP (webhook, Slack, Microsoft Teams, PagerDuty Events v2, Opsgenie) or SMTP.

Delivery is blocking I/O with a timeout; the service runs it in worker threads and retries
with backoff. ``deliver`` raises :class:`DeliveryError` for anything but success.

The generic webhook receives the notification's JSON payload (see docs/alerting.md) with
``X-Flowdeck-Timestamp`` (Unix seconds) and ``X-Flowdeck-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``<timestamp>.<body>`` keyed with the channel's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Final

import orjson

from flowdeck import __version__
from flowdeck.alerts.rules import Channel

USER_AGENT: Final = f"flowdeck/{__version__}"
SEVERITY_MARK: Final = {"critical": "🔴", "error": "🟠", "warning": "🟡", "info": "🔵"}
PAGERDUTY_SEVERITY: Final = {
    "critical": "critical",
    "error": "error",
    "warning": "warning",
    "info": "info",
}
OPSGENIE_PRIORITY: Final = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}


class DeliveryError(Exception):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Flowdeck-Signature for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _when(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return "—"


def title(payload: Mapping[str, Any]) -> str:
    rule = payload["rule"]
    alerts = payload["alerts"]
    firing = sum(1 for a in alerts if a["status"] == "firing")
    if payload["status"] == "firing":
        state = f"FIRING:{firing}" + (" again" if payload.get("repeat") else "")
    else:
        state = "RESOLVED"
    where = ", ".join(f"{k}={v}" for k, v in payload.get("group_labels", {}).items())
    return f"[{state}] {rule['name']} ({rule['severity']})" + (f" · {where}" if where else "")


def _where(alert: Mapping[str, Any]) -> str:
    labels = alert["labels"]
    parts = [labels.get("pipeline") or f"batch {labels.get('batch_id', '?')}"]
    parts.append(f"env {labels.get('env', '?')}")
    if labels.get("project", "default") != "default":
        parts.append(f"project {labels['project']}")
    extra = [
        f"{k}={v}"
        for k, v in sorted(labels.items())
        if k not in ("pipeline", "env", "project", "batch_id", "rule", "kind", "severity")
    ]
    return ", ".join(parts + extra)


def text_body(payload: Mapping[str, Any]) -> str:
    rule = payload["rule"]
    lines = [title(payload), ""]
    for a in payload["alerts"]:
        state = a["status"].upper()
        lines.append(f"{state}: {a['summary']}")
        lines.append(f"  where: {_where(a)}")
        since = a.get("fired_at") or a.get("active_since")
        lines.append(f"  since: {_when(since)}")
        if a["status"] == "resolved":
            lines.append(f"  resolved: {_when(a.get('resolved_at'))}")
        lines.append(f"  details: {a['url']}")
        lines.append("")
    if rule.get("remediation"):
        lines += ["What to do:", rule["remediation"], ""]
    lines.append(f"Runbook: {rule['runbook_url']}")
    lines.append(f"Dashboard: {payload['dashboard_url']}")
    return "\n".join(lines) + "\n"


def html_body(payload: Mapping[str, Any]) -> str:
    e = html.escape
    rule = payload["rule"]
    rows = []
    for a in payload["alerts"]:
        color = "#c62828" if a["status"] == "firing" else "#2e7d32"
        since = a.get("fired_at") or a.get("active_since")
        rows.append(
            f'<tr><td style="color:{color};font-weight:bold">{e(a["status"].upper())}</td>'
            f"<td>{e(a['summary'])}<br><small>{e(_where(a))} · since {e(_when(since))}"
            f' · <a href="{e(a["url"])}">details</a></small></td></tr>'
        )
    remediation = (
        f"<h3>What to do</h3><p>{e(rule['remediation']).replace(chr(10), '<br>')}</p>"
        if rule.get("remediation")
        else ""
    )
    return (
        f"<html><body><h2>{e(title(payload))}</h2>"
        f'<table cellpadding="6">{"".join(rows)}</table>{remediation}'
        f'<p><a href="{e(rule["runbook_url"])}">Runbook</a> · '
        f'<a href="{e(payload["dashboard_url"])}">Dashboard</a></p></body></html>'
    )


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    rule = payload["rule"]
    mark = SEVERITY_MARK.get(rule["severity"], "") if payload["status"] == "firing" else "✅"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{mark} {title(payload)}"[:150]}}
    ]
    for a in payload["alerts"][:20]:
        since = a.get("fired_at") or a.get("active_since")
        status = "Resolved" if a["status"] == "resolved" else "Firing"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*{status}:* {a['summary']}"[:3000]},
                "fields": [
                    {"type": "mrkdwn", "text": f"*Severity*\n{a['severity']}"},
                    {"type": "mrkdwn", "text": f"*Where*\n{_where(a)}"[:2000]},
                    {"type": "mrkdwn", "text": f"*Since*\n{_when(since)}"},
                    {"type": "mrkdwn", "text": f"*Details*\n<{a['url']}|open>"},
                ],
            }
        )
    if len(payload["alerts"]) > 20:
        more = len(payload["alerts"]) - 20
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"… and {more} more"}]}
        )
    if rule.get("remediation"):
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"*What to do*\n{rule['remediation']}"[:3000]},
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"<{rule['runbook_url']}|Runbook> · "
                    f"<{payload['dashboard_url']}|Dashboard>",
                }
            ],
        }
    )
    return {"text": text_body(payload)[:3000], "blocks": blocks}


def teams_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    rule = payload["rule"]
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
            "text": title(payload),
        }
    ]
    for a in payload["alerts"][:20]:
        since = a.get("fired_at") or a.get("active_since")
        body.append(
            {
                "type": "TextBlock",
                "wrap": True,
                "text": f"**{a['status'].upper()}**: {a['summary']}",
            }
        )
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Severity", "value": a["severity"]},
                    {"title": "Where", "value": _where(a)},
                    {"title": "Since", "value": _when(since)},
                ],
            }
        )
    if rule.get("remediation"):
        body.append(
            {"type": "TextBlock", "wrap": True, "text": f"**What to do**: {rule['remediation']}"}
        )
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
        "actions": [
            {"type": "Action.OpenUrl", "title": "Runbook", "url": rule["runbook_url"]},
            {"type": "Action.OpenUrl", "title": "Dashboard", "url": payload["dashboard_url"]},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def _post(
    url: str,
    body: bytes,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise DeliveryError(
            f"HTTP {exc.code} from {_host(url)}: {detail or exc.reason}", exc.code
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"cannot reach {_host(url)}: {reason}") from None


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def deliver(channel: Channel, payload: Mapping[str, Any], now: datetime) -> int | None:
    """Send one notification through one channel; returns the HTTP status (None for SMTP)."""
    cfg = channel.config
    timeout = channel.timeout_s
    if channel.type == "webhook":
        body = orjson.dumps(payload, option=orjson.OPT_UTC_Z)
        headers = dict(cfg.get("headers") or {})
        timestamp = str(int(now.timestamp()))
        headers["X-Flowdeck-Timestamp"] = timestamp
        headers["X-Flowdeck-Notification"] = str(payload.get("id", ""))
        if cfg.get("secret"):
            headers["X-Flowdeck-Signature"] = sign(cfg["secret"], timestamp, body)
        return _post(cfg["url"], body, timeout, headers)
    if channel.type == "slack":
        return _post(cfg["url"], orjson.dumps(slack_message(payload)), timeout)
    if channel.type == "teams":
        return _post(cfg["url"], orjson.dumps(teams_message(payload)), timeout)
    if channel.type == "pagerduty":
        return _pagerduty(cfg, payload, timeout)
    if channel.type == "opsgenie":
        return _opsgenie(cfg, payload, timeout)
    if channel.type == "email":
        _email(cfg, payload, timeout)
        return None
    raise DeliveryError(f"unknown channel type {channel.type!r}")


def _pagerduty(cfg: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> int:
    status = 0
    rule = payload["rule"]
    for a in payload["alerts"]:
        event: dict[str, Any] = {
            "routing_key": cfg["routing_key"],
            "event_action": "trigger" if a["status"] == "firing" else "resolve",
            "dedup_key": a["fingerprint"],
        }
        if a["status"] == "firing":
            event["payload"] = {
                "summary": a["summary"][:1024],
                "source": _where(a),
                "severity": PAGERDUTY_SEVERITY.get(a["severity"], "error"),
                "timestamp": a.get("fired_at"),
                "component": a["labels"].get("pipeline") or a["labels"].get("batch_id"),
                "group": a["labels"].get("env"),
                "class": rule["kind"],
                "custom_details": {"labels": a["labels"], "remediation": rule.get("remediation")},
            }
            event["links"] = [
                {"href": a["url"], "text": "flowdeck"},
                {"href": rule["runbook_url"], "text": "runbook"},
            ]
        status = _post(cfg["url"], orjson.dumps(event, option=orjson.OPT_UTC_Z), timeout)
    return status


def _opsgenie(cfg: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> int:
    status = 0
    rule = payload["rule"]
    headers = {"Authorization": f"GenieKey {cfg['api_key']}"}
    base = str(cfg["url"]).rstrip("/")
    for a in payload["alerts"]:
        if a["status"] == "firing":
            body = {
                "message": a["summary"][:130],
                "alias": a["fingerprint"],
                "description": text_body({**payload, "alerts": [a]})[:15000],
                "priority": OPSGENIE_PRIORITY.get(a["severity"], "P3"),
                "source": "flowdeck",
                "tags": [rule["kind"], a["labels"].get("env", "")],
                "details": {k: str(v) for k, v in a["labels"].items()},
            }
            status = _post(base, orjson.dumps(body), timeout, headers)
        else:
            url = f"{base}/{urllib.parse.quote(a['fingerprint'])}/close?identifierType=alias"
            status = _post(url, orjson.dumps({"source": "flowdeck"}), timeout, headers)
    return status


def _email(cfg: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = title(payload)
    message["From"] = cfg["from"]
    message["To"] = ", ".join(cfg["to"])
    message.set_content(text_body(payload))
    message.add_alternative(html_body(payload), subtype="html")
    host, port, tls = cfg["host"], int(cfg["port"]), cfg["tls"]
    try:
        smtp: smtplib.SMTP
        # The timeout bounds every socket operation (connect, TLS handshake, each reply), so
        # a server that accepts and then says nothing cannot hold a delivery worker.
        if tls == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context(cfg))
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if tls == "starttls":
                smtp.starttls(context=_tls_context(cfg))
            if cfg.get("username"):
                _login(smtp, cfg["username"], cfg["password"])
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        raise DeliveryError(f"SMTP {exc.smtp_code} from {host}: {text}", exc.smtp_code) from None
    except (smtplib.SMTPException, OSError) as exc:
        # smtplib reports a read that timed out as "Connection unexpectedly closed".
        if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
            raise DeliveryError(f"SMTP {host}:{port}: no answer within {timeout:g} s") from None
        raise DeliveryError(f"SMTP {host}:{port}: {exc}") from None


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """One attempt, with the best mechanism the server offers. smtplib's login() tries each
    mechanism in turn after a refused password: with the retries, a wrong password would
    count as several failed logins per notification against a server's lockout policy."""
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    mechanism = next((m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        raise smtplib.SMTPException(f"no authentication mechanism in common: {' '.join(offered)}")
    smtp.user, smtp.password = user, password
    smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower().replace("-", "_")))


def _tls_context(cfg: Mapping[str, Any]) -> ssl.SSLContext:
    """Certificates verified, host name checked; against the channel's CA file if it has one."""
    return ssl.create_default_context(cafile=cfg.get("ca_file"))
