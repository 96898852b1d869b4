"""The SLO pages: the list (state, compliance per window, error budget, burn rates), kept
fresh by htmx every 15 s, and one SLO (its SLI over time as an ECharts chart,
``static/slos.js``, its burn rates and its definition). JSON twins: /api/v1/slos,
/api/v1/slos/{name} and /api/v1/slos/{name}/history."""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.alerts.matchers import format_duration
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput, StoreUnavailable
from flowdeck.slo.compute import BURN_WINDOWS, COMPLIANCE_WINDOWS
from flowdeck.slo.model import Slo
from flowdeck.slo.service import DEFAULT_HISTORY, HISTORY_STEPS, SloService, SloState
from flowdeck.web.pages import error_page, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

RANGE_NAMES: Final = {"24h": "24 hours", "7d": "7 days", "30d": "30 days"}
# Burn rates from which a window reads as a warning and as critical (the SRE workbook's
# ticket and page factors).
BURN_WARN: Final = 6.0
BURN_CRIT: Final = 14.4
KIND_NAMES: Final = {
    "latency": "Latency",
    "throughput": "Throughput",
    "success_rate": "Success rate",
    "freshness": "Freshness",
}


def _slos(svc: Services) -> SloService:
    if svc.slos is None:
        raise StoreUnavailable("SLOs are not available on this store")
    return svc.slos


def pct(value: float | None, digits: int = 2) -> str:
    """A percentage already in percent: ``99.73 %``; None → ``–``."""
    if value is None:
        return "–"
    if 99.99 <= value < 100:
        digits = max(digits, 3)
    return f"{value:.{digits}f} %"


def burn_level(value: float | None) -> str:
    if value is None:
        return "none"
    if value >= BURN_CRIT:
        return "bad"
    if value >= BURN_WARN:
        return "warn"
    return "ok" if value <= 1 else "mild"


def burn_text(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}×" if value < 100 else f"{value:,.0f}×"


def budget_view(value: float | None) -> dict[str, Any]:
    """The budget bar: its width (0–100), level and words."""
    if value is None:
        return {"width": 0, "level": "none", "text": "no data"}
    level = "ok" if value >= 50 else "warn" if value > 0 else "bad"
    text = f"{value:.1f} % left" if value >= 0 else f"overspent by {-value:.1f} %"
    return {"width": max(0.0, min(100.0, value)), "level": level, "text": text}


def state_view(state: SloState) -> dict[str, Any]:
    return {
        "state": state,
        "kind_name": KIND_NAMES[state.kind],
        "compliance": [
            {
                "window": w,
                "text": pct(state.compliance.get(w)),
                "ok": None
                if state.compliance.get(w) is None
                else (state.compliance[w] or 0) >= state.objective,
            }
            for w in COMPLIANCE_WINDOWS
        ],
        "burns": [
            {
                "window": w,
                "text": burn_text(state.burn_rates.get(w)),
                "level": burn_level(state.burn_rates.get(w)),
            }
            for w in BURN_WINDOWS
        ],
        "budget": budget_view(state.budget_remaining),
        "sli": pct(state.sli),
    }


def list_context(slos: SloService, now: Any) -> dict[str, Any]:
    states = slos.states(now)
    views = [state_view(s) for s in states]
    return {
        "views": views,
        "now": now,
        "counts": {
            "failing": sum(1 for s in states if s.status == "failing"),
            "passing": sum(1 for s in states if s.status == "passing"),
            "no_data": sum(1 for s in states if s.status == "no_data"),
        },
        "nav": "slos",
    }


@router.get("/slos")
async def slos_page(request: Request, svc: Svc) -> Response:
    try:
        context = await run_in_threadpool(list_context, _slos(svc), svc.clock())
    except FlowdeckError as exc:
        return error_page(request, exc)
    fragment = request.headers.get("hx-target") == "slo-list"
    return page(request, "_slo_list.html" if fragment else "slos.html", context)


def definition_rows(slo: Slo) -> list[tuple[str, str]]:
    rows = [
        ("Objective", slo.describe()),
        ("Kind", KIND_NAMES[slo.kind]),
        ("Project", slo.project),
        ("Pipeline", slo.pipeline),
    ]
    if slo.env is not None:
        rows.append(("Environment", slo.env))
    if slo.kind == "latency":
        rows.append(("Threshold", f"{slo.threshold_ms:,g} ms (flow.e2e_latency_ms)"))
    elif slo.kind == "throughput":
        cycle = format_duration(slo.cycle_s or 60)
        rows.append(("Cycle", f"{slo.min_events:,} events of flow.events per {cycle}"))
    elif slo.kind == "freshness":
        rows.append(("Max age", format_duration(slo.max_age_s or 0)))
    rows.append(("Pass/fail over", f"the last {slo.window}"))
    return rows


def slo_context(slos: SloService, name: str, now: Any, span: str) -> dict[str, Any]:
    slo = slos.db.get_slo(name)
    state = slos.state(slo, now)
    history = slos.history(slo, now, span)
    chart = {**history, "name": slo.name, "kind": slo.kind}
    return {
        "slo": slo,
        "view": state_view(state),
        "definition": definition_rows(slo),
        "history": history,
        "chart_json": orjson.dumps(chart).decode().replace("</", "<\\/"),
        "span": span,
        "ranges": RANGE_NAMES,
        "burn_warn": BURN_WARN,
        "burn_crit": BURN_CRIT,
        "now": now,
        "nav": "slos",
    }


@router.get("/slos/{name}")
async def slo_page(name: str, request: Request, svc: Svc) -> Response:
    span = request.query_params.get("range", DEFAULT_HISTORY)
    try:
        if span not in HISTORY_STEPS:
            raise InvalidInput(
                [FieldProblem("range", f"must be one of {', '.join(HISTORY_STEPS)}")]
            )
        context = await run_in_threadpool(slo_context, _slos(svc), name, svc.clock(), span)
    except FlowdeckError as exc:
        return error_page(request, exc)
    fragment = request.headers.get("hx-target") == "slo-now"
    return page(request, "_slo_now.html" if fragment else "slo.html", context)
