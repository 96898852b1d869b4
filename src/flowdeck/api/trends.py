"""GET /api/v1/trends: batch performance per day over a window (the trends page's twin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from flowdeck.api.params import parse_time
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.models import Health
from flowdeck.store import BatchQuery
from flowdeck.trends import daily_trends

router = APIRouter(tags=["trends"])

# More batches than this in one window are left out (oldest first): say so in the answer.
MAX_BATCHES = 5000


class TrendDay(BaseModel):
    day: str = Field(description="UTC day, YYYY-MM-DD; batches count on the day they started")
    batches: int
    processes: int
    succeeded: int
    failed: int
    dq_errors: int
    rows_read: int
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed): of the processes that finished; "
        "null when none did"
    )
    dq_error_rate: float | None = Field(description="dq_errors / rows_read")


class TrendBatch(BaseModel):
    project: str
    batch_id: str
    env: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None = Field(description="first start to last end; null while open")
    total: int
    failed: int
    health: Health


class Trends(BaseModel):
    since: datetime
    until: datetime
    truncated: bool = Field(description=f"true when the window holds over {MAX_BATCHES} batches")
    days: list[TrendDay]
    batches: list[TrendBatch] = Field(description="oldest first")


def trends_in(
    svc: Services, since: str, until: str | None, env: str | None, project: str | None
) -> dict[str, Any]:
    now = svc.clock()
    start = parse_time("since", since, now)
    end = parse_time("until", until, now) if until else now
    if end < start:
        raise InvalidInput([FieldProblem("until", "must not be before since")])
    if (end - start).days > 366:
        raise InvalidInput([FieldProblem("since", "the window may span at most 366 days")])
    rows = svc.store.list_batches(
        BatchQuery(since=start, until=end, env=env, project=project, limit=MAX_BATCHES)
    )
    return {
        "since": start,
        "until": end,
        "truncated": len(rows) >= MAX_BATCHES,
        **daily_trends(rows, start, end),
    }


@router.get("/trends", response_model=Trends, summary="Batch performance per day")
def get_trends(
    svc: Annotated[Services, Depends(services)],
    since: Annotated[str, Query(description="7d, 30d, any N[mhdw] or an ISO-8601 time")] = "7d",
    until: Annotated[str | None, Query(description="ISO-8601 time or a duration")] = None,
    env: str | None = None,
    project: str | None = None,
) -> Response:
    return JSON(trends_in(svc, since, until, env, project))
