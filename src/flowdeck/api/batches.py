"""The batch dashboard's questions: which batches, how each is doing, and its processes."""

from __future__ import annotations

import csv
import io
import math
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

import flowdeck.api.paths  # noqa: F401  (registers the {batch_id:batch} convertor)
from flowdeck.api.params import parse_time
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.api.shapes import RUN_FIELDS, run_out
from flowdeck.batches import batch_out, batch_summary
from flowdeck.errors import FieldProblem, InvalidInput, NotFound
from flowdeck.models import BatchList, BatchSummaryOut, RunPage, Status
from flowdeck.store import BatchQuery, BatchRow, RunQuery
from flowdeck.store.sql import RUN_SORTS

router = APIRouter(tags=["batches"])

PAGE_SIZES = (25, 50, 100)
Svc = Annotated[Services, Depends(services)]
ProjectParam = Annotated[
    str | None, Query(description="needed only when two projects share a batch id")
]


@router.get("/batches", response_model=BatchList, summary="Batches, newest first")
def list_batches(
    svc: Svc,
    env: str | None = None,
    project: str | None = None,
    since: Annotated[str, Query(description="24h, 7d, 30d or an ISO-8601 time")] = "7d",
    until: Annotated[str | None, Query(description="ISO-8601 time or a duration")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> Response:
    now = svc.clock()
    query = BatchQuery(
        since=parse_time("since", since, now),
        until=parse_time("until", until, now) if until else None,
        env=env,
        project=project,
        limit=limit,
    )
    return JSON({"items": [batch_out(b) for b in svc.store.list_batches(query)]})


def find_batch(svc: Services, batch_id: str, project: str | None) -> BatchRow:
    if project is not None:
        return svc.store.get_batch(project, batch_id)
    found = svc.store.find_batches(batch_id)
    if not found:
        raise NotFound("batch", batch_id)
    if len(found) > 1:
        names = ", ".join(b.project for b in found)
        raise InvalidInput(
            [FieldProblem("project", f"batch {batch_id!r} exists in projects {names}; name one")]
        )
    return found[0]


@router.get(
    "/batches/{batch_id:batch}", response_model=BatchSummaryOut, summary="One batch's summary"
)
def get_batch(batch_id: str, svc: Svc, project: ProjectParam = None) -> Response:
    return JSON(batch_summary(find_batch(svc, batch_id, project)))


def _statuses(raw: str | None) -> list[str]:
    if not raw:
        return []
    names = [s.strip().upper() for s in raw.split(",") if s.strip()]
    allowed = {s.value for s in Status}
    bad = [n for n in names if n not in allowed]
    if bad:
        raise InvalidInput(
            [FieldProblem("status", f"unknown status {bad[0]!r}; use {', '.join(sorted(allowed))}")]
        )
    return names


def _sort(sort: str) -> str:
    if sort not in RUN_SORTS:
        raise InvalidInput(
            [FieldProblem("sort", f"unknown column {sort!r}; use one of {', '.join(RUN_SORTS)}")]
        )
    return sort


SortParam = Annotated[str, Query(description="any run field, e.g. pipeline, status, duration_s")]
OrderParam = Annotated[Literal["asc", "desc"], Query()]
StatusParam = Annotated[
    str | None, Query(description="comma-separated: PENDING,RUNNING,SUCCESS,FAILED")
]


@router.get(
    "/batches/{batch_id:batch}/runs", response_model=RunPage, summary="A batch's processes, paged"
)
def list_batch_runs(
    batch_id: str,
    svc: Svc,
    project: ProjectParam = None,
    sort: SortParam = "pipeline",
    order: OrderParam = "asc",
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(description="25, 50 or 100")] = 50,
    status: StatusParam = None,
) -> Response:
    if page_size not in PAGE_SIZES:
        raise InvalidInput([FieldProblem("page_size", "must be one of 25, 50, 100")])
    batch = find_batch(svc, batch_id, project)
    query = RunQuery(
        project=batch.project,
        batch_id=batch.batch_id,
        statuses=_statuses(status),
        sort=_sort(sort),
        order=order,
        limit=page_size,
        offset=(page - 1) * page_size,
    )
    total, runs = svc.store.list_batch_runs(query)
    return JSON(
        {
            "total": total,
            "page": page,
            "page_size": page_size,
            "pages": max(1, math.ceil(total / page_size)),
            "sort": sort,
            "order": order,
            "items": [run_out(r) for r in runs],
        }
    )


def _cell(value: object) -> object:
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return "" if value is None else value


@router.get(
    "/batches/{batch_id:batch}/runs.csv",
    summary="A batch's processes as CSV (every row, same sort and filter)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_batch_runs(
    batch_id: str,
    svc: Svc,
    project: ProjectParam = None,
    sort: SortParam = "pipeline",
    order: OrderParam = "asc",
    status: StatusParam = None,
) -> Response:
    batch = find_batch(svc, batch_id, project)
    query = RunQuery(
        project=batch.project,
        batch_id=batch.batch_id,
        statuses=_statuses(status),
        sort=_sort(sort),
        order=order,
        limit=None,
    )
    _, runs = svc.store.list_batch_runs(query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RUN_FIELDS)
    for run in runs:
        row = run_out(run)
        writer.writerow([_cell(row[name]) for name in RUN_FIELDS])
    filename = f"batch-{batch.batch_id}-runs.csv".replace('"', "")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
