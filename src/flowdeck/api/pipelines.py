"""GET /api/v1/pipelines: each pipeline's last run, last success and failure streak."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.api.shapes import pipeline_out
from flowdeck.models import PipelineList

router = APIRouter(tags=["pipelines"])


@router.get("/pipelines", response_model=PipelineList, summary="Pipelines and their freshness")
def list_pipelines(
    svc: Annotated[Services, Depends(services)],
    project: str | None = None,
    env: str | None = None,
) -> Response:
    now = svc.clock()
    rows = svc.store.list_pipelines(project=project, env=env)
    return JSON({"items": [pipeline_out(r, now) for r in rows]})
