"""The incidents' pages: the list (open first, filters in the URL) and one incident (its
summary, figures and timeline, with links to its flow's live page and its SLO's page). The
JSON twins are ``GET /api/v1/incidents`` and ``GET /api/v1/incidents/{id}``.

Both refresh themselves: incident news goes out on the stream as ``alert`` items, and
app.js reloads every ``[data-live="alerts"]`` element of a page on those (htmx asks for the
element alone by naming it in ``HX-Target``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.services import Services, services
from flowdeck.errors import FlowdeckError, StoreUnavailable
from flowdeck.incidents import wording as w
from flowdeck.incidents.model import KIND_NAMES, KINDS, Incident
from flowdeck.incidents.query import IncidentQuery, parse_query
from flowdeck.incidents.service import IncidentService
from flowdeck.web.pages import error_page, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

MOMENT_NAMES: Final[Mapping[str, str]] = {
    "began": "Began",
    "opened": "Opened",
    "worsened": "Worsened",
    "peak": "Peak",
    "recovering": "Recovering",
    "relapsed": "Relapsed",
    "closed": "Closed",
}
# The impact figures, in the order shown: label and how the number reads.
FIGURES: Final[tuple[tuple[str, str, str], ...]] = (
    ("backlog", "Backlog (all stages)", "count"),
    ("queue_depth", "Queue at the stage", "count"),
    ("queue_capacity", "Queue capacity", "count"),
    ("arrival_rate", "Arriving", "rate"),
    ("processed_rate", "Finished", "rate"),
    ("failed", "Failed in the window", "count"),
    ("stage_p95_ms", "Stage time p95", "ms"),
    ("e2e_p95_ms", "End-to-end latency p95", "ms"),
    ("events_per_s", "Events finished", "rate"),
    ("sli", "SLI", "pct"),
    ("objective", "Objective", "pct"),
    ("budget_remaining", "Error budget left (30 d)", "pct"),
    ("silent_s", "Silent for", "duration"),
)
_READ: Final = {
    "count": w.count,
    "rate": w.rate,
    "ms": w.ms,
    "pct": w.pct,
    "duration": w.duration,
}


def _service(svc: Services) -> IncidentService:
    if svc.incidents is None:
        raise StoreUnavailable("incidents are not available on this store")
    return svc.incidents


def figures(inc: Incident) -> list[tuple[str, str]]:
    """The incident's impact figures as (label, text), those it has."""
    out = []
    for key, label, kind in FIGURES:
        value = inc.numbers.get(key)
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        if key == "budget_remaining" and value <= 0:
            out.append((label, f"none: spent ({w.pct(value, 1)})"))
            continue
        out.append((label, _READ[kind](value)))
    return out


def state_of(inc: Incident) -> str:
    """open, recovering or closed."""
    if not inc.is_open:
        return "closed"
    return "recovering" if inc.recovering_since is not None else "open"


def _list_context(service: IncidentService, query: IncidentQuery, now: Any) -> dict[str, Any]:
    found = service.list_incidents(query.state, **query.filters())
    flows = service.declared_flows()
    open_ones = [i for i in found if i.is_open]
    # What the filters offer: the pipelines with incidents, or the one asked for.
    everything = service.list_incidents("all", limit=1000)
    pipelines = sorted({i.pipeline for i in everything} | {query.pipeline or ""} - {""})
    return {
        "query": query,
        "open": open_ones,
        "closed": [i for i in found if not i.is_open],
        "critical": sum(1 for i in open_ones if i.severity == "critical"),
        "recovering": sum(1 for i in open_ones if i.recovering_since is not None),
        "pipelines": pipelines,
        "kinds": [(k, KIND_NAMES[k]) for k in KINDS],
        "kind_names": KIND_NAMES,
        "now": now,
        "state_of": state_of,
        "links": lambda inc: inc.links((inc.project, inc.pipeline) in flows),
        "lasted": lambda inc: w.duration(inc.duration_s(now)),
        "refresh_url": "/incidents" + (f"?{urlencode(query.params())}" if query.params() else ""),
    }


@router.get("/incidents")
async def incidents_page(request: Request, svc: Svc) -> Response:
    try:
        query = parse_query(request.query_params)
        context = await run_in_threadpool(_list_context, _service(svc), query, svc.clock())
    except FlowdeckError as exc:
        return error_page(request, exc)
    context["nav"] = "incidents"
    if request.headers.get("hx-target") == "incident-list":
        return page(request, "_incident_list.html", context)
    return page(request, "incidents.html", context)


@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: str, request: Request, svc: Svc) -> Response:
    try:
        inc = await run_in_threadpool(_service(svc).get_incident, incident_id)
        flows = await run_in_threadpool(_service(svc).declared_flows)
    except FlowdeckError as exc:
        return error_page(request, exc)
    now = svc.clock()
    context = {
        "inc": inc,
        "state": state_of(inc),
        "kind_name": KIND_NAMES.get(inc.kind, inc.kind),
        "figures": figures(inc),
        "timeline": list(reversed(inc.timeline)),
        "moment_names": MOMENT_NAMES,
        "lasted": w.duration(inc.duration_s(now)),
        "links": inc.links((inc.project, inc.pipeline) in flows),
        "now": now,
        "nav": "incidents",
    }
    if request.headers.get("hx-target") == "incident-body":
        return page(request, "_incident_body.html", context)
    return page(request, "incident.html", context)
