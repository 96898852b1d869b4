"""Alerting's pages: the notification centre (and the bell of every page), alerts with
acknowledgement and silences, rules and channels. Their JSON twins are /api/v1/notifications,
/alerts, /silences, /alert-rules and /channels; the pages call the same service.

Forms post to the page routes (a browser's form encoding) and answer with a redirect back
(post, redirect, get), or with the page and its problems (422) when a field is invalid. The
bell and the lists refresh themselves over the change stream (htmx, ``HX-Target``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.engine import FIRING, PENDING, Alert
from flowdeck.alerts.rules import COMMON_FIELDS, Channel, Rule
from flowdeck.alerts.service import APP_CHANNEL, AlertService, InUse, ReadOnly
from flowdeck.api.alerts import parse_silence
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput, StoreUnavailable
from flowdeck.web.pages import error_page, page
from flowdeck.web.templating import templates

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

MAX_FORM = 64 * 1024
HISTORY_LIMIT = 100
NOTIFICATION_LIMIT = 100
# A channel is marked failing after this many failed attempts since its last success.
FAILING_AFTER = 2
# Labels that name what an alert is about: a silence made from an alert matches these.
SUBJECT_LABELS = ("rule", "project", "env", "pipeline", "batch_id")
SILENCE_DURATIONS = ("1h", "2h", "4h", "8h", "1d", "3d", "7d")


def service(svc: Services) -> AlertService:
    if svc.alerts is None:
        raise StoreUnavailable("alerting is not running (it needs a DuckDB or PostgreSQL store)")
    return svc.alerts


async def form(request: Request) -> dict[str, str]:
    """The posted form's fields (the last value of each; blank ones as empty text)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise InvalidInput([FieldProblem("form", f"must be under {MAX_FORM} bytes")])
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1].strip() for k, v in fields.items()}


def back(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def unread_count(request: Request) -> int | None:
    """Unread notifications for the bell of every page (None when alerting is off)."""
    svc: Services | None = getattr(request.app.state, "services", None)
    if svc is None or svc.alerts is None:
        return None
    try:
        return len(svc.alerts.db.notifications(channel=APP_CHANNEL, unread=True, limit=1000))
    except FlowdeckError:
        return None


templates.env.globals["unread_count"] = unread_count


# -- the notification centre -------------------------------------------------------------
def _notification(n: Any) -> dict[str, Any]:
    payload = n.payload
    alerts = payload.get("alerts") or []
    rule = payload.get("rule") or {}
    first = alerts[0] if alerts else {}
    return {
        "id": n.id,
        "kind": n.kind,
        "read": n.read_at is not None,
        "created_at": n.created_at,
        "rule": n.rule,
        "severity": rule.get("severity", "info"),
        "status": payload.get("status", n.kind),
        "repeat": payload.get("repeat", False),
        "count": len(alerts),
        "summary": first.get("summary", ""),
        "fingerprint": first.get("fingerprint"),
        "others": len(alerts) - 1,
        "remediation": rule.get("remediation"),
        "runbook_url": rule.get("runbook_url"),
    }


def notifications_context(alerts: AlertService, unread_only: bool) -> dict[str, Any]:
    items = alerts.db.notifications(
        channel=APP_CHANNEL, unread=unread_only, limit=NOTIFICATION_LIMIT
    )
    return {
        "items": [_notification(n) for n in items],
        "unread_only": unread_only,
        "unread": len(alerts.db.notifications(channel=APP_CHANNEL, unread=True, limit=1000)),
        "limit": NOTIFICATION_LIMIT,
    }


@router.get("/notifications/bell")
def bell(request: Request) -> Response:
    response = page(request, "_bell.html", {"nav": None})
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/notifications")
def notifications_page(request: Request, svc: Svc, unread: str = "") -> Response:
    try:
        context = notifications_context(service(svc), unread == "1")
    except FlowdeckError as exc:
        return error_page(request, exc)
    context["nav"] = "notifications"
    fragment = request.headers.get("hx-target") == "notification-list"
    return page(request, "_notifications.html" if fragment else "notifications.html", context)


@router.post("/notifications/read")
async def mark_read(request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        data = await form(request)
        ids = [data["id"]] if data.get("id") else None
        await run_in_threadpool(alerts.mark_read, ids)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return back("/notifications" + ("?unread=1" if data.get("unread") == "1" else ""))


# -- alerts ------------------------------------------------------------------------------
def alert_view(alert: Alert, silenced_by: str | None, rules: dict[str, Rule]) -> dict[str, Any]:
    subject = dict(alert.subject)
    rule = rules.get(alert.rule)
    return {
        "alert": alert,
        "silenced_by": silenced_by,
        "subject": subject,
        "runbook_url": (rule.runbook_url if rule is not None else None) or f"/runbook#{alert.kind}",
        "remediation": rule.remediation if rule is not None else None,
        "matchers": [f"{k}={alert.labels[k]}" for k in SUBJECT_LABELS if alert.labels.get(k)],
    }


def _current(
    alerts: AlertService,
    silences: Sequence[Silence],
    rules: dict[str, Rule],
    rule: str | None = None,
) -> list[dict[str, Any]]:
    """The pending and firing alerts (of one rule, or all), each with the silence on it."""
    return [
        alert_view(a, alerts.silenced_by(a, silences), rules)
        for a in alerts.db.alerts(states=(PENDING, FIRING), rule=rule)
    ]


def alerts_context(alerts: AlertService) -> dict[str, Any]:
    now = alerts.clock()
    silences = alerts.db.silences(since=now)
    rules = alerts.rules()
    current = _current(alerts, silences, rules)
    resolved = [
        alert_view(a, None, rules)
        for a in alerts.db.alerts(states=("resolved",), limit=HISTORY_LIMIT)
    ]
    return {
        "now": now,
        "firing": [v for v in current if v["alert"].state == FIRING and not v["silenced_by"]],
        "pending": [v for v in current if v["alert"].state == PENDING and not v["silenced_by"]],
        "silenced": [v for v in current if v["silenced_by"]],
        "resolved": resolved,
        "history_limit": HISTORY_LIMIT,
        "silences": [s.out(now) for s in silences],
        "durations": SILENCE_DURATIONS,
        "nav": "alerts",
    }


@router.get("/alerts")
def alerts_page(request: Request, svc: Svc) -> Response:
    try:
        context = alerts_context(service(svc))
    except FlowdeckError as exc:
        return error_page(request, exc)
    context["form"] = {"duration": "2h"}
    context["problems"] = {}
    context["done"] = request.query_params.get("done", "")
    fragment = request.headers.get("hx-target") == "alert-lists"
    return page(request, "_alert_lists.html" if fragment else "alerts.html", context)


def alert_context(alerts: AlertService, fp: str) -> dict[str, Any]:
    alert = alerts.db.get_alert(fp)
    view = alert_view(alert, alerts.silenced_by(alert), alerts.rules())
    return {
        **view,
        "now": alerts.clock(),
        "history": alerts.db.history(fp),
        "durations": SILENCE_DURATIONS,
        "nav": "alerts",
    }


def _silence_form(context: dict[str, Any]) -> dict[str, str]:
    """The silence form of an alert's page as it opens: its subject, for two hours."""
    return {"duration": "2h", "matchers": "\n".join(context["matchers"])}


@router.get("/alerts/{fp}")
def alert_page(fp: str, request: Request, svc: Svc) -> Response:
    try:
        context = alert_context(service(svc), fp)
    except FlowdeckError as exc:
        return error_page(request, exc)
    context["form"] = _silence_form(context)
    context["ack_form"] = {}
    context["problems"] = {}
    context["done"] = request.query_params.get("done", "")
    return page(request, "alert.html", context)


def _problems(exc: InvalidInput) -> dict[str, str]:
    """Field name (without its ``silence.`` or ``acknowledge.`` prefix) → message."""
    out: dict[str, str] = {}
    for p in exc.problems:
        name = p.loc.split(".", 1)[-1].split("[", 1)[0]
        out.setdefault(name, p.msg)
    return out


@router.post("/alerts/{fp}/acknowledge")
async def acknowledge(fp: str, request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        data = await form(request)
        if not data.get("by"):
            context = alert_context(alerts, fp)
            context.update(
                form=_silence_form(context),
                ack_form=data,
                problems={"by": "is required: who acknowledges"},
                done="",
            )
            return page(request, "alert.html", context, status_code=422)
        await run_in_threadpool(alerts.acknowledge, fp, data["by"], data.get("comment") or None)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return back(f"/alerts/{quote(fp, safe='')}?done=acknowledged")


def silence_data(data: dict[str, str]) -> dict[str, Any]:
    """The form's fields as the API's silence (one matcher per line)."""
    out: dict[str, Any] = {
        "matchers": [m.strip() for m in data.get("matchers", "").splitlines() if m.strip()],
        "author": data.get("author", ""),
        "comment": data.get("comment", ""),
    }
    if data.get("starts_at"):
        out["starts_at"] = _local_time(data["starts_at"])
    if data.get("ends_at"):
        out["ends_at"] = _local_time(data["ends_at"])
    elif data.get("duration"):
        out["duration"] = data["duration"]
    return out


def _local_time(value: str) -> str:
    """A datetime-local field (no zone) is UTC, as every time on the pages is."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return value if parsed.tzinfo is not None else value + "+00:00"


@router.post("/silences")
async def create_silence(request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        data = await form(request)
        try:
            silence = parse_silence(silence_data(data), alerts.clock())
        except InvalidInput as exc:
            fp = data.get("fingerprint")
            if fp:
                context = alert_context(alerts, fp)
                context.update(ack_form={}, done="")
            else:
                context = alerts_context(alerts)
                context["done"] = ""
            context.update(form=data, problems=_problems(exc))
            return page(request, "alert.html" if fp else "alerts.html", context, status_code=422)
        await run_in_threadpool(alerts.add_silence, silence)
    except FlowdeckError as exc:
        return error_page(request, exc)
    if data.get("fingerprint"):
        return back(f"/alerts/{quote(data['fingerprint'], safe='')}?done=silenced")
    return back("/alerts?done=silenced#silences")


@router.post("/silences/{sid}/expire")
async def expire_silence(sid: str, request: Request, svc: Svc) -> Response:
    try:
        await run_in_threadpool(service(svc).expire_silence, sid)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return back("/alerts?done=expired#silences")


# -- rules -------------------------------------------------------------------------------
@router.get("/rules")
def rules_page(request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        rules = sorted(alerts.rules().values(), key=lambda r: r.name)
        active = alerts.db.alerts(states=(PENDING, FIRING))
    except FlowdeckError as exc:
        return error_page(request, exc)
    counts: dict[str, int] = {}
    for a in active:
        counts[a.rule] = counts.get(a.rule, 0) + 1
    return page(
        request,
        "rules.html",
        {
            "rules": rules,
            "counts": counts,
            "done": request.query_params.get("done", ""),
            "nav": "rules",
        },
    )


def rule_context(alerts: AlertService, name: str) -> dict[str, Any]:
    rule = alerts.get_rule(name)
    now = alerts.clock()
    current = _current(alerts, alerts.db.silences(since=now), alerts.rules(), rule=name)
    spec = rule.out()
    params = {k: v for k, v in spec.items() if k not in COMMON_FIELDS}
    return {
        "rule": rule,
        "spec": spec,
        "params": params,
        "current": current,
        "now": now,
        "nav": "rules",
    }


@router.get("/rules/{name}")
def rule_page(name: str, request: Request, svc: Svc) -> Response:
    try:
        context = rule_context(service(svc), name)
    except FlowdeckError as exc:
        return error_page(request, exc)
    context["done"] = request.query_params.get("done", "")
    context["problem"] = None
    return page(request, "rule.html", context)


def _rule_refused(request: Request, alerts: AlertService, name: str, exc: ReadOnly) -> Response:
    """The rule's page with why the change was refused (409)."""
    context = rule_context(alerts, name)
    context.update(done="", problem=str(exc))
    return page(request, "rule.html", context, status_code=409)


@router.post("/rules/{name}/enabled")
async def set_rule_enabled(name: str, request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        data = await form(request)
        rule = alerts.get_rule(name)
        spec = {**rule.out(), "enabled": data.get("enabled") == "true"}
        try:
            await run_in_threadpool(alerts.put_rule, spec, name)
        except ReadOnly as exc:
            return _rule_refused(request, alerts, name, exc)
    except FlowdeckError as exc:
        return error_page(request, exc)
    done = "enabled" if spec["enabled"] else "disabled"
    return back(f"/rules/{quote(name, safe='')}?done={done}")


@router.post("/rules/{name}/delete")
async def delete_rule(name: str, request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        try:
            await run_in_threadpool(alerts.delete_rule, name)
        except ReadOnly as exc:
            return _rule_refused(request, alerts, name, exc)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return back("/rules?" + urlencode({"done": f"deleted {name}"}))


# -- channels ----------------------------------------------------------------------------
def channel_view(channel: Channel, health: dict[str, Any] | None) -> dict[str, Any]:
    # A channel that never sent anything has no health row yet.
    h = {"last_success_at": None, "last_failure_at": None, "last_error": None, **(health or {})}
    failures = int(h.get("failures_since_success") or 0)
    return {
        "channel": channel,
        "config": channel.out(),
        "health": h,
        "failures": failures,
        "failing": failures >= FAILING_AFTER,
        "last_failed": failures > 0,
        "pending": int(h.get("pending") or 0),
        "failed": int(h.get("failed") or 0),
    }


@router.get("/channels")
def channels_page(request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        health = alerts.db.channel_health()
        channels = [
            channel_view(c, health.get(c.name))
            for c in sorted(alerts.channels().values(), key=lambda c: c.name)
        ]
        users: dict[str, list[str]] = {}
        for r in alerts.rules().values():
            for c in r.channels:
                users.setdefault(c, []).append(r.name)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return page(
        request,
        "channels.html",
        {
            "channels": channels,
            "users": users,
            "now": alerts.clock(),
            "failing_after": FAILING_AFTER,
            "done": request.query_params.get("done", ""),
            "nav": "channels",
        },
    )


def channel_context(alerts: AlertService, name: str) -> dict[str, Any]:
    channel = alerts.get_channel(name)
    view = channel_view(channel, alerts.db.channel_health().get(name))
    recent = alerts.db.notifications(channel=name, limit=20)
    return {
        **view,
        "users": sorted(r.name for r in alerts.rules().values() if name in r.channels),
        "recent": [
            {
                **_notification(n),
                "status": n.status,
                "attempts": n.attempts,
                "last_error": n.last_error,
                "sent_at": n.sent_at,
            }
            for n in recent
        ],
        "failing_after": FAILING_AFTER,
        "nav": "channels",
    }


@router.get("/channels/{name}")
def channel_page(name: str, request: Request, svc: Svc) -> Response:
    try:
        context = channel_context(service(svc), name)
    except FlowdeckError as exc:
        return error_page(request, exc)
    context.update(done=request.query_params.get("done", ""), problem=None, test=None)
    return page(request, "channel.html", context)


@router.post("/channels/{name}/test")
async def test_channel(name: str, request: Request, svc: Svc) -> Response:
    """Send a test message now; htmx swaps in the result, a plain form gets the page."""
    try:
        alerts = service(svc)
        notification, delivery = await run_in_threadpool(alerts.send_test, name)
        result = {"ok": delivery.ok, "delivery": delivery, "notification": notification.id}
        if request.headers.get("hx-request"):
            context = {**channel_context(alerts, name), "test": result}
            return page(request, "_test_result.html", context)
        context = channel_context(alerts, name)
        context.update(done="", problem=None, test=result)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return page(request, "channel.html", context)


@router.post("/channels/{name}/delete")
async def delete_channel(name: str, request: Request, svc: Svc) -> Response:
    try:
        alerts = service(svc)
        try:
            await run_in_threadpool(alerts.delete_channel, name)
        except (ReadOnly, InUse) as exc:
            context = channel_context(alerts, name)
            context.update(done="", problem=str(exc), test=None)
            return page(request, "channel.html", context, status_code=409)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return back("/channels?" + urlencode({"done": f"deleted {name}"}))
