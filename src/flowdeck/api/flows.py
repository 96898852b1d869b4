"""Flows API: a pipeline's declared stages at /flows/{pipeline} (PUT, GET, DELETE), the list,
and the live view of one flow (``/flows/{pipeline}/live``, the JSON twin of the live page).
The rules live in ``flowdeck.flows``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput, NotFound
from flowdeck.flows.live import DEFAULT_WINDOW_S, LiveView, live_view
from flowdeck.flows.model import DEFAULT_PROJECT, FlowIn, FlowSpec, parse_flow
from flowdeck.flows.store import FlowStore
from flowdeck.store.metrics_sql import MetricsSql

router = APIRouter(tags=["flows"])
Svc = Annotated[Services, Depends(services)]
MAX_BODY: Final = 256 * 1024
_SERVER_KEYS: Final = ("created_at", "updated_at", "url")
_DURATION = re.compile(r"([1-9][0-9]*)([smh]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3_600}
WINDOW_RANGE: Final = (10, 3_600)
TRENDS: Final = {"0": 0, "5m": 300, "15m": 900, "1h": 3_600}

_BODY_DOC: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FlowIn.model_json_schema()}},
    }
}
ProjectQ = Annotated[str, Query(min_length=1, max_length=200, description="the flow's project")]


def flow_store(svc: Svc) -> FlowStore:
    if svc.flows is None:
        raise ApiError(503, "flows are not available on this store")
    return svc.flows


def metrics_of(svc: Services) -> MetricsSql:
    if not isinstance(svc.store, MetricsSql):
        raise ApiError(503, "this store keeps no metrics")
    return svc.store


Flows = Annotated[FlowStore, Depends(flow_store)]


def parse_window(value: str | None) -> int:
    """``window``: seconds, or 30s / 5m / 1h; 10 s to 1 h."""
    if value is None:
        return DEFAULT_WINDOW_S
    match = _DURATION.fullmatch(value.strip())
    seconds = int(match[1]) * _UNITS[match[2]] if match else None
    if seconds is None or not WINDOW_RANGE[0] <= seconds <= WINDOW_RANGE[1]:
        raise InvalidInput(
            [
                FieldProblem(
                    "window", f"must be 10 s to 1 h (seconds, or 30s, 5m, 1h); got {value!r}"
                )
            ]
        )
    return seconds


def parse_trend(value: str | None) -> int:
    if value is None:
        return 0
    if value not in TRENDS:
        raise InvalidInput(
            [FieldProblem("trend", f"must be one of {', '.join(TRENDS)}; got {value!r}")]
        )
    return TRENDS[value]


def get_flow(flows: FlowStore, project: str, pipeline: str) -> FlowSpec:
    spec = flows.get(project, pipeline)
    if spec is None:
        raise NotFound("flow", pipeline if project == DEFAULT_PROJECT else f"{project}/{pipeline}")
    return spec


def live_of(
    svc: Services, spec: FlowSpec, window_s: int = DEFAULT_WINDOW_S, trend_s: int = 0
) -> LiveView:
    return live_view(metrics_of(svc), spec, svc.clock(), window_s, trend_s=trend_s)


def summary_out(spec: FlowSpec, live: LiveView | None) -> dict[str, Any]:
    out = spec.out()
    if live is not None:
        out["live"] = {
            "light": live.light,
            "reasons": list(live.reasons),
            "as_of": live.as_of,
            "stale": live.stale,
            "speed": live.speed,
            "backlog": live.backlog,
            "events_processed": live.events_processed,
            "e2e_p95_ms": live.e2e_p95_ms,
            "bottleneck": live.bottleneck,
            "stages": {s.name: s.light for s in live.stages},
        }
    return out


@router.get(
    "/flows",
    summary="Declared flows, by project and pipeline",
    description="With `live=true`, each carries its live summary (overall light, reasons, "
    "speed, backlog, end-to-end p95): the JSON twin of the /flows page.",
)
def list_flows(
    svc: Svc,
    flows: Flows,
    project: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    live: bool = False,
) -> Response:
    specs = flows.list(project)
    return JSON({"items": [summary_out(s, live_of(svc, s) if live else None) for s in specs]})


@router.put(
    "/flows/{pipeline}",
    summary="Declare a flow (its stages) or replace its declaration",
    description="201 when new, 200 when replaced. 422 names every broken rule "
    "(`stages[1].name: must be unique; 'enrich' is also stages[0]`); nothing is written then. "
    "What GET answers may be sent back as it is.",
    openapi_extra=_BODY_DOC,
    responses={201: {"description": "declared"}},
)
async def put_flow(pipeline: str, request: Request, flows: Flows, svc: Svc) -> Response:
    data = await read_json_value(request, MAX_BODY)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _SERVER_KEYS}
    spec = parse_flow(data, pipeline)
    stored, created = await svc.writer.run_call(lambda: flows.put(spec, svc.clock()))
    return JSON(stored.out(), status_code=201 if created else 200)


@router.get("/flows/{pipeline}", summary="One flow's declaration")
def get_one(pipeline: str, flows: Flows, project: ProjectQ = DEFAULT_PROJECT) -> Response:
    return JSON(get_flow(flows, project, pipeline).out())


@router.delete(
    "/flows/{pipeline}",
    summary="Forget a flow's declaration (its metric points stay)",
    status_code=204,
)
async def delete_flow(
    pipeline: str, flows: Flows, svc: Svc, project: ProjectQ = DEFAULT_PROJECT
) -> Response:
    await svc.writer.run_call(lambda: flows.delete(project, pipeline))
    return Response(status_code=204)


@router.get(
    "/flows/{pipeline}/live",
    summary="The live view of a flow",
    description="Per stage: arrival and processed rates (events/s), queue depth, p95 latency, "
    "a traffic light and its reasons; overall: light, events processed, backlog, speed, "
    "end-to-end p50/p95/p99 and the breakdown by signal, over the last `window` of reported "
    "data (default 60 s). `trend` (5m, 15m, 1h) adds the last minutes in steps.",
)
async def get_live(
    pipeline: str,
    flows: Flows,
    svc: Svc,
    project: ProjectQ = DEFAULT_PROJECT,
    window: Annotated[str | None, Query(description="10 s to 1 h: 60, 30s, 5m")] = None,
    trend: Annotated[str | None, Query(description="0, 5m, 15m or 1h")] = None,
) -> Response:
    window_s = parse_window(window)
    trend_s = parse_trend(trend)
    spec = get_flow(flows, project, pipeline)
    view = await run_in_threadpool(live_of, svc, spec, window_s, trend_s)
    return JSON(view.out())
