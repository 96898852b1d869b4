"""Incidents API: the list (``state``, ``pipeline``, ``project``, ``kind``, ``limit``) and one
incident with its timeline. Incidents are opened and closed by detection
(``flowdeck.incidents``), never through the API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.incidents.query import parse_query
from flowdeck.incidents.service import IncidentService

router = APIRouter(tags=["incidents"])
Svc = Annotated[Services, Depends(services)]


def incident_service(svc: Svc) -> IncidentService:
    if svc.incidents is None:
        raise ApiError(503, "incidents are not available")
    return svc.incidents


Incidents = Annotated[IncidentService, Depends(incident_service)]


@router.get(
    "/incidents",
    summary="Incidents, newest first",
    description="`state`: open, closed or all (default all). 422 names a bad filter.",
)
async def list_incidents(
    request: Request,
    incidents: Incidents,
    state: Annotated[str | None, Query(description="open, closed or all")] = None,
    pipeline: Annotated[str | None, Query(description="only this pipeline")] = None,
    project: Annotated[str | None, Query(description="only this project")] = None,
    kind: Annotated[
        str | None, Query(description="queue_overflow, stalled_stage or missed_slo")
    ] = None,
    limit: Annotated[str | None, Query(description="at most this many (1–1000, 200)")] = None,
) -> Response:
    query = parse_query(request.query_params)
    found = await run_in_threadpool(incidents.list_incidents, query.state, **query.filters())
    flows = await run_in_threadpool(incidents.declared_flows)
    out: dict[str, Any] = {
        "items": [i.out((i.project, i.pipeline) in flows) for i in found],
        "open": sum(1 for i in found if i.is_open),
    }
    return JSON(out)


@router.get("/incidents/{incident_id}", summary="One incident with its timeline")
async def get_incident(incident_id: str, incidents: Incidents) -> Response:
    found = await run_in_threadpool(incidents.get_incident, incident_id)
    flows = await run_in_threadpool(incidents.declared_flows)
    return JSON(found.out((found.project, found.pipeline) in flows))
