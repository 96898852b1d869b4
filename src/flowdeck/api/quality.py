"""GET /api/v1/batches/{batch_id}/dq: the processes of a batch over 1 % DQ errors (the DQ
view's twin)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.responses import Response

import flowdeck.api.paths  # noqa: F401  (registers the {batch_id:batch} convertor)
from flowdeck.api.batches import PAGE_SIZES, ProjectParam, find_batch
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.api.shapes import run_out
from flowdeck.batches import batch_summary
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.models import BatchSummaryOut, RunOut
from flowdeck.quality import dq_warning_runs

router = APIRouter(tags=["batches"])


class DqPage(BaseModel):
    batch: BatchSummaryOut
    total: int
    page: int
    page_size: int
    pages: int
    items: list[RunOut]


def dq_page(
    svc: Services, batch_id: str, project: str | None, page: int, page_size: int
) -> dict[str, Any]:
    if page_size not in PAGE_SIZES:
        raise InvalidInput([FieldProblem("page_size", "must be one of 25, 50, 100")])
    batch = find_batch(svc, batch_id, project)
    total, runs = dq_warning_runs(svc.store, batch, page, page_size)
    return {
        "batch": batch_summary(batch),
        "total": total,
        "page": page,
        "page_size": page_size,
        "pages": max(1, math.ceil(total / page_size)),
        "items": [run_out(r) for r in runs],
    }


@router.get(
    "/batches/{batch_id:batch}/dq",
    response_model=DqPage,
    summary="A batch's processes over 1 % DQ errors, worst first",
)
def get_batch_dq(
    batch_id: str,
    svc: Annotated[Services, Depends(services)],
    project: ProjectParam = None,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(description="25, 50 or 100")] = 50,
) -> Response:
    return JSON(dq_page(svc, batch_id, project, page, page_size))
