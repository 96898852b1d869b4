"""Alerting's API: /alert-rules, /channels, /alerts, /silences and /notifications.

Rules and channels from the alerts file are listed with ``"source": "file"`` and cannot be
changed here (409). Channel secrets are write-only: shown as ``********``; sending the mask
back keeps the stored secret."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.alerts import runbook
from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.engine import Alert
from flowdeck.alerts.matchers import MatcherError, parse_duration, parse_matcher
from flowdeck.alerts.rules import Channel, Rule
from flowdeck.alerts.service import AlertService, InUse, ReadOnly
from flowdeck.alerts.store import blank_health
from flowdeck.api.body import read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput

router = APIRouter(tags=["alerting"])
STATES = ("pending", "firing", "resolved", "inactive")
MAX_BODY = 1024 * 1024


def alerting(svc: Annotated[Services, Depends(services)]) -> AlertService:
    if svc.alerts is None:
        raise ApiError(503, "alerting is not running")
    return svc.alerts


Alerting = Annotated[AlertService, Depends(alerting)]


async def _body(request: Request, where: str) -> Any:
    data = await read_json_value(request, MAX_BODY)
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem(where, "must be a JSON object")])
    return data


def _conflict(exc: Exception) -> ApiError:
    return ApiError(409, str(exc))


def rule_out(rule: Rule) -> dict[str, Any]:
    return {**rule.out(), "source": rule.source}


def channel_out(channel: Channel, health: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        **channel.out(),
        "source": channel.source,
        "health": health or blank_health(),
    }


# -- rules -------------------------------------------------------------------------------
@router.get("/alert-rules", summary="Alert rules (from the API and the alerts file)")
def list_rules(alerts: Alerting) -> Response:
    return JSON({"items": [rule_out(r) for r in sorted(alerts.rules().values(), key=_name)]})


def _name(obj: Rule | Channel) -> str:
    return obj.name


@router.post("/alert-rules", status_code=201, summary="Create an alert rule")
async def create_rule(request: Request, alerts: Alerting) -> Response:
    data = await _body(request, "rule")
    try:
        rule, _ = await run_in_threadpool(alerts.put_rule, data)
    except (ReadOnly, InUse) as exc:
        raise _conflict(exc) from None
    return JSON(rule_out(rule), status_code=201)


@router.get("/alert-rules/{name}", summary="One alert rule")
def get_rule(name: str, alerts: Alerting) -> Response:
    return JSON(rule_out(alerts.get_rule(name)))


@router.put("/alert-rules/{name}", summary="Replace an alert rule")
async def replace_rule(name: str, request: Request, alerts: Alerting) -> Response:
    data = await _body(request, f"rule[{name}]")
    try:
        rule, _ = await run_in_threadpool(alerts.put_rule, data, name)
    except ReadOnly as exc:
        raise _conflict(exc) from None
    return JSON(rule_out(rule))


@router.delete("/alert-rules/{name}", status_code=204, summary="Delete an alert rule")
def delete_rule(name: str, alerts: Alerting) -> Response:
    try:
        alerts.delete_rule(name)
    except ReadOnly as exc:
        raise _conflict(exc) from None
    return Response(status_code=204)


# -- channels ----------------------------------------------------------------------------
@router.get("/channels", summary="Notification channels and their health")
def list_channels(alerts: Alerting) -> Response:
    health = alerts.db.channel_health()
    items = [
        channel_out(c, health.get(c.name)) for c in sorted(alerts.channels().values(), key=_name)
    ]
    return JSON({"items": items})


@router.post("/channels", status_code=201, summary="Create a notification channel")
async def create_channel(request: Request, alerts: Alerting) -> Response:
    data = await _body(request, "channel")
    try:
        channel, _ = await run_in_threadpool(alerts.put_channel, data)
    except (ReadOnly, InUse) as exc:
        raise _conflict(exc) from None
    return JSON(channel_out(channel), status_code=201)


@router.get("/channels/{name}", summary="One channel, its health and its latest notifications")
def get_channel(name: str, alerts: Alerting) -> Response:
    channel = alerts.get_channel(name)
    out = channel_out(channel, alerts.db.channel_health().get(name))
    out["notifications"] = [
        _notification_brief(n) for n in alerts.db.notifications(channel=name, limit=20)
    ]
    return JSON(out)


@router.put("/channels/{name}", summary="Replace a channel")
async def replace_channel(name: str, request: Request, alerts: Alerting) -> Response:
    data = await _body(request, f"channel[{name}]")
    try:
        channel, _ = await run_in_threadpool(alerts.put_channel, data, name)
    except ReadOnly as exc:
        raise _conflict(exc) from None
    return JSON(channel_out(channel))


@router.delete("/channels/{name}", status_code=204, summary="Delete a channel no rule uses")
def delete_channel(name: str, alerts: Alerting) -> Response:
    try:
        alerts.delete_channel(name)
    except (ReadOnly, InUse) as exc:
        raise _conflict(exc) from None
    return Response(status_code=204)


@router.post("/channels/{name}/test", summary="Send a test notification through a channel now")
def test_channel(name: str, alerts: Alerting) -> Response:
    notification, delivery = alerts.send_test(name)
    return JSON(
        {"notification": notification.id, "ok": delivery.ok, "delivery": delivery.out()},
        status_code=200 if delivery.ok else 502,
    )


# -- alerts ------------------------------------------------------------------------------
def alert_out(alert: Alert, silenced_by: str | None, base: str) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "kind": alert.kind,
        "severity": alert.severity,
        "state": alert.state,
        "silenced_by": silenced_by,
        "labels": dict(alert.labels),
        "subject": dict(alert.subject),
        "value": alert.value,
        "summary": alert.summary,
        "active_since": alert.active_since,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "evaluated_at": alert.evaluated_at,
        "acknowledged_at": alert.acknowledged_at,
        "acknowledged_by": alert.acknowledged_by,
        "ack_comment": alert.ack_comment,
        "notified": alert.notified or None,
        "notified_at": alert.notified_at,
        "episode": alert.episode,
        "url": f"{base}/api/v1/alerts/{alert.fingerprint}",
    }


def _states(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return ("pending", "firing")
    states = tuple(s.strip() for s in raw.split(",") if s.strip())
    for s in states:
        if s not in STATES:
            raise InvalidInput(
                [FieldProblem("state", f"must be one of {', '.join(STATES)}, got {s!r}")]
            )
    return states


@router.get("/alerts", summary="Alerts: pending and firing by default")
def list_alerts(
    alerts: Alerting,
    state: Annotated[
        str | None, Query(description="comma list of pending, firing, resolved")
    ] = None,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    found = alerts.db.alerts(states=_states(state), rule=rule, limit=limit)
    now = alerts.clock()
    silences = alerts.db.silences(since=now)
    base = alerts.options.public_url.rstrip("/")
    return JSON({"items": [alert_out(a, alerts.silenced_by(a, silences), base) for a in found]})


@router.get("/alerts/{fingerprint}", summary="One alert with its history")
def get_alert(fingerprint: str, alerts: Alerting) -> Response:
    alert = alerts.db.get_alert(fingerprint)
    out = alert_out(alert, alerts.silenced_by(alert), alerts.options.public_url.rstrip("/"))
    out["history"] = alerts.db.history(fingerprint)
    return JSON(out)


@router.post("/alerts/{fingerprint}/acknowledge", summary="Acknowledge: no repeats until resolved")
async def acknowledge(fingerprint: str, request: Request, alerts: Alerting) -> Response:
    data = await _body(request, "acknowledge")
    problems = []
    by = data.get("by")
    if not isinstance(by, str) or not by.strip():
        problems.append(FieldProblem("acknowledge.by", "is required: who acknowledges"))
    comment = data.get("comment")
    if comment is not None and not isinstance(comment, str):
        problems.append(FieldProblem("acknowledge.comment", "must be text"))
    for key in data:
        if key not in ("by", "comment"):
            problems.append(FieldProblem(f"acknowledge.{key}", "is not a known field"))
    if problems:
        raise InvalidInput(problems)
    alert = await run_in_threadpool(alerts.acknowledge, fingerprint, by, comment)
    return JSON(alert_out(alert, alerts.silenced_by(alert), alerts.options.public_url.rstrip("/")))


@router.get("/alert-history", summary="Every change of state of every alert, newest first")
def alert_history(alerts: Alerting, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return JSON({"items": alerts.db.history(limit=limit)})


# -- silences ----------------------------------------------------------------------------
def parse_silence(data: dict[str, Any], now: datetime) -> Silence:
    problems: list[FieldProblem] = []

    def fail(name: str, msg: str) -> None:
        problems.append(FieldProblem(f"silence.{name}", msg))

    allowed = {"matchers", "starts_at", "ends_at", "duration", "author", "comment"}
    for key in data:
        if key not in allowed:
            fail(key, "is not a known field")
    matchers = []
    raw = data.get("matchers")
    if not isinstance(raw, list) or not raw:
        fail("matchers", "is required: a list such as ['retailer=acme', 'env=prod']")
    else:
        for i, item in enumerate(raw):
            try:
                matchers.append(parse_matcher(item))
            except MatcherError as exc:
                fail(f"matchers[{i}]", str(exc))

    def when(name: str) -> datetime | None:
        value = data.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
        fail(name, "must be an ISO-8601 time with a zone offset")
        return None

    starts = when("starts_at") or now
    ends = when("ends_at")
    if data.get("duration") is not None:
        if ends is not None:
            fail("duration", "give ends_at or duration, not both")
        try:
            ends = starts + timedelta(seconds=parse_duration(data["duration"]))
        except ValueError as exc:
            fail("duration", str(exc))
    elif ends is None and "ends_at" not in data:
        fail("ends_at", "is required (or duration, such as 2h)")
    if ends is not None and ends <= starts:
        fail("ends_at", "must be after starts_at")
    for name in ("author", "comment"):
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            fail(name, "is required")
    if problems:
        raise InvalidInput(problems)
    assert ends is not None
    return Silence(
        id=uuid.uuid4().hex,
        matchers=tuple(matchers),
        starts_at=starts,
        ends_at=ends,
        author=data["author"].strip(),
        comment=data["comment"].strip(),
        created_at=now,
    )


@router.get("/silences", summary="Silences (active and scheduled by default)")
def list_silences(
    alerts: Alerting, all: Annotated[bool, Query(description="include expired ones")] = False
) -> Response:
    now = alerts.clock()
    items = alerts.db.silences(since=None if all else now)
    return JSON({"items": [s.out(now) for s in items]})


@router.post("/silences", status_code=201, summary="Silence alerts matching labels for a while")
async def create_silence(request: Request, alerts: Alerting) -> Response:
    data = await _body(request, "silence")
    now = alerts.clock()
    silence = parse_silence(data, now)
    await run_in_threadpool(alerts.add_silence, silence)
    return JSON(silence.out(now), status_code=201)


@router.get("/silences/{sid}", summary="One silence")
def get_silence(sid: str, alerts: Alerting) -> Response:
    return JSON(alerts.db.get_silence(sid).out(alerts.clock()))


@router.delete("/silences/{sid}", summary="Expire a silence now")
def expire_silence(sid: str, alerts: Alerting) -> Response:
    silence = alerts.expire_silence(sid)
    return JSON(silence.out(alerts.clock()))


# -- notifications -----------------------------------------------------------------------
def _notification_brief(n: Any) -> dict[str, Any]:
    out: dict[str, Any] = n.out()
    payload = out.pop("payload")
    out["title"] = _title(payload)
    return out


def _title(payload: dict[str, Any]) -> str:
    from flowdeck.alerts.notify import title

    try:
        return title(payload)
    except (KeyError, TypeError):
        return ""


@router.get("/notifications", summary="Notifications sent or queued, newest first")
def list_notifications(
    alerts: Alerting,
    channel: str | None = None,
    status: Annotated[str | None, Query(pattern="^(pending|sent|failed)$")] = None,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    items = alerts.db.notifications(channel=channel, status=status, unread=unread, limit=limit)
    unread_count = len(alerts.db.notifications(channel="app", unread=True, limit=1000))
    return JSON({"unread": unread_count, "items": [_notification_brief(n) for n in items]})


@router.get("/notifications/{nid}", summary="One notification, its payload and delivery log")
def get_notification(nid: str, alerts: Alerting) -> Response:
    n = alerts.db.get_notification(nid)
    out = n.out()
    out["deliveries"] = [d.out() for d in alerts.db.deliveries(nid)]
    return JSON(out)


@router.post("/notifications/read", summary="Mark notifications read (all when no ids)")
async def mark_read(request: Request, alerts: Alerting) -> Response:
    data = await _body(request, "read")
    ids = data.get("ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise InvalidInput([FieldProblem("read.ids", "must be a list of notification ids")])
    count = await run_in_threadpool(alerts.mark_read, ids)
    return JSON({"marked": count})


# -- the runbook notifications link to (the page is /runbook, in flowdeck.web) --------------
runbook_router = APIRouter(tags=["alerting"])


@runbook_router.get("/runbook.md", summary="The alerting runbook as Markdown (the page: /runbook)")
def runbook_markdown() -> Response:
    text = runbook.text()
    if text is None:
        raise ApiError(404, "the runbook is not installed with this flowdeck")
    return Response(text, media_type="text/markdown; charset=utf-8")
