"""SLOs API: definitions at /slos (PUT creates or replaces by name), each with its state now,
and the history behind the SLO page's chart. The arithmetic lives in ``flowdeck.slo``."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.slo.model import KINDS, Slo, parse_slo
from flowdeck.slo.service import DEFAULT_HISTORY, HISTORY_STEPS, SloService, SloState

router = APIRouter(tags=["slos"])
Svc = Annotated[Services, Depends(services)]
MAX_BODY: Final = 64 * 1024

_BODY_DOC: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["pipeline", "kind", "objective"],
                    "properties": {
                        "project": {"type": "string", "default": "default"},
                        "pipeline": {"type": "string"},
                        "env": {"type": "string", "description": "run-based kinds only"},
                        "kind": {"type": "string", "enum": list(KINDS)},
                        "objective": {"type": "number", "minimum": 50, "exclusiveMaximum": 100},
                        "window": {"type": "string", "enum": ["1h", "24h", "7d", "30d"]},
                        "threshold_ms": {"type": "number", "description": "latency"},
                        "min_events": {"type": "integer", "description": "throughput"},
                        "cycle": {"type": "string", "description": "throughput (1m)"},
                        "max_age": {"type": "string", "description": "freshness"},
                        "description": {"type": "string"},
                    },
                }
            }
        },
    }
}


def slo_service(svc: Svc) -> SloService:
    if svc.slos is None:
        raise ApiError(503, "SLOs are not available")
    return svc.slos


Slos = Annotated[SloService, Depends(slo_service)]


def slo_out(slo: Slo, state: SloState | None) -> dict[str, Any]:
    return {
        **slo.spec(),
        "objective_text": slo.describe(),
        "created_at": slo.created_at,
        "updated_at": slo.updated_at,
        "url": f"/slos/{slo.name}",
        "state": state.out() if state is not None else None,
    }


def list_out(slos: SloService, now: Any, project: str | None, pipeline: str | None) -> Any:
    states = {s.name: s for s in slos.states(now)}
    # One defined since the states were cached (by another replica) is evaluated now.
    return [
        slo_out(s, states.get(s.name) or slos.state(s, now))
        for s in slos.db.list_slos(project, pipeline)
    ]


@router.get("/slos", summary="SLOs with their state now, by name")
async def list_slos(
    slos: Slos, svc: Svc, project: str | None = None, pipeline: str | None = None
) -> Response:
    items = await run_in_threadpool(list_out, slos, svc.clock(), project, pipeline)
    return JSON({"items": items, "evaluated_at": svc.clock()})


@router.get("/slos/{name}", summary="One SLO: its definition and its state now")
async def get_slo(name: str, slos: Slos, svc: Svc) -> Response:
    def one() -> dict[str, Any]:
        slo = slos.db.get_slo(name)
        return slo_out(slo, slos.state(slo, svc.clock()))

    return JSON(await run_in_threadpool(one))


@router.get(
    "/slos/{name}/history",
    summary="An SLO's SLI per bucket over a range",
    description="`range` 24h (15-minute buckets), 7d (hourly) or 30d (6-hourly): each "
    "point's `sli` is the compliance within its bucket, with its `good` and `total` units.",
)
async def get_history(
    name: str,
    slos: Slos,
    svc: Svc,
    range_: Annotated[str, Query(alias="range")] = DEFAULT_HISTORY,
) -> Response:
    if range_ not in HISTORY_STEPS:
        raise InvalidInput([FieldProblem("range", f"must be one of {', '.join(HISTORY_STEPS)}")])

    def history() -> dict[str, Any]:
        return slos.history(slos.db.get_slo(name), svc.clock(), range_)

    return JSON(await run_in_threadpool(history))


@router.put(
    "/slos/{name}",
    summary="Create or replace an SLO",
    description="201 when created, 200 when replaced. 422 names every broken rule "
    "(`objective: must be a number from 50 up to (not including) 100, in percent`); "
    "nothing is written then. What GET answered may be sent back as it is.",
    openapi_extra=_BODY_DOC,
)
async def put_slo(name: str, request: Request, slos: Slos, svc: Svc) -> Response:
    data = await read_json_value(request, MAX_BODY)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("objective_text",)}
    slo = parse_slo(data, name)
    stored, created = await svc.writer.run_call(lambda: slos.db.put_slo(slo, svc.clock()))
    slos.forget()
    return JSON(slo_out(stored, None), status_code=201 if created else 200)


@router.delete("/slos/{name}", summary="Delete an SLO", status_code=204)
async def delete_slo(name: str, slos: Slos, svc: Svc) -> Response:
    await svc.writer.run_call(lambda: slos.db.delete_slo(name))
    slos.forget()
    return Response(status_code=204)
