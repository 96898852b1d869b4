"""The live pipeline pages: ``/flows`` (every declared flow with its traffic light) and
``/flows/{pipeline}`` (the stages as a flow diagram with queue depth, rates and a light each;
events processed, backlog, speed, end-to-end percentiles, the breakdown by signal and small
trend charts). Their JSON twins are ``GET /api/v1/flows?live=true`` and
``GET /api/v1/flows/{pipeline}/live``.

Both refresh in place: the list with htmx every few seconds, the flow page from
``static/flow.js``, which asks for the live part again (``HX-Target: flow-live``) when the
stream says flow metrics arrived, and every few seconds besides (a pipeline that stops
reporting must turn stale on screen too).
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from flowdeck.api.flows import TRENDS, get_flow, live_of, parse_trend, parse_window
from flowdeck.api.services import Services, services
from flowdeck.errors import FlowdeckError, StoreUnavailable
from flowdeck.flows.live import fmt_age, fmt_count, fmt_ms, fmt_rate
from flowdeck.flows.model import DEFAULT_PROJECT
from flowdeck.flows.store import FlowStore
from flowdeck.web.pages import error_page, page
from flowdeck.web.templating import templates

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

REFRESH_S: Final = 5
WINDOWS: Final = {"30": "30 s", "60": "1 min", "300": "5 min"}
TREND_NAMES: Final = {"5m": "5 min", "15m": "15 min", "1h": "1 hour"}
DEFAULT_TREND: Final = "15m"
LIGHT_WORDS: Final = {"green": "Healthy", "orange": "Degraded", "red": "Critical"}
LIGHT_ICONS: Final = {"green": "✓", "orange": "◐", "red": "✕"}
assert set(TREND_NAMES) <= set(TRENDS)


def _or_dash(fmt: Any) -> Any:
    return lambda value: "–" if value is None else fmt(value)


templates.env.filters.update(
    {
        "flow_rate": _or_dash(fmt_rate),
        "flow_ms": _or_dash(fmt_ms),
        "flow_count": _or_dash(fmt_count),
        "flow_age": _or_dash(fmt_age),
    }
)
templates.env.globals.update({"light_words": LIGHT_WORDS, "light_icons": LIGHT_ICONS})


def _flows(svc: Services) -> FlowStore:
    if svc.flows is None:
        raise StoreUnavailable("flows are not available on this store")
    return svc.flows


def _script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">."""
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode().replace("</", "<\\/")


@router.get("/flows")
def flows_page(request: Request, svc: Svc) -> Response:
    try:
        specs = _flows(svc).list()
        rows = [(spec, live_of(svc, spec)) for spec in specs]
    except FlowdeckError as exc:
        return error_page(request, exc)
    context = {"rows": rows, "nav": "flows", "refresh_s": REFRESH_S, "now": svc.clock()}
    if request.headers.get("hx-target") == "flow-list":
        return page(request, "_flow_list.html", context)
    return page(request, "flows.html", context)


@router.get("/flows/{pipeline}")
def flow_page(pipeline: str, request: Request, svc: Svc) -> Response:
    params = request.query_params
    project = params.get("project") or DEFAULT_PROJECT
    try:
        window_s = parse_window(params.get("window"))
        trend = params.get("trend") or DEFAULT_TREND
        trend_s = parse_trend(trend)
        if not trend_s:  # the page always draws its trends
            trend, trend_s = DEFAULT_TREND, parse_trend(DEFAULT_TREND)
        spec = get_flow(_flows(svc), project, pipeline)
        view = live_of(svc, spec, window_s, trend_s)
    except FlowdeckError as exc:
        return error_page(request, exc)
    query = {"window": str(window_s), "trend": trend}
    if project != DEFAULT_PROJECT:
        query["project"] = project
    context = {
        "spec": spec,
        "view": view,
        "trend_json": _script_json(view.trend.out() if view.trend else None),
        "refresh_url": f"/flows/{quote(pipeline, safe='')}?{urlencode(query)}",
        "api_url": f"/api/v1/flows/{quote(pipeline, safe='')}/live?{urlencode(query)}",
        "window": str(window_s),
        "trend": trend,
        "windows": WINDOWS,
        "trend_names": TREND_NAMES,
        "refresh_s": REFRESH_S,
        "project": project,
        "nav": "flows",
    }
    if request.headers.get("hx-target") == "flow-live":
        return page(request, "_flow_live.html", context)
    return page(request, "flow.html", context)
