"""Human review API: sampled events in (``POST /review/samples``), the queue with filters and
paging, one sample, a reviewer's decision, a CSV export, the summary the page charts, and
each pipeline's sampling rate. The rules live in ``flowdeck.review``."""

from __future__ import annotations

import csv
import io
import math
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.review.model import (
    MAX_SAMPLES,
    STATUSES,
    DecisionIn,
    SampleFilter,
    SampleIn,
    SettingIn,
    check_name,
    parse_decision,
    parse_samples,
    parse_setting,
)
from flowdeck.review.service import ReviewService
from flowdeck.review.summary import summary

router = APIRouter(tags=["review"])
Svc = Annotated[Services, Depends(services)]
MAX_BODY: Final = 8 * 1024 * 1024
MAX_PAGE_SIZE: Final = 500
CSV_COLUMNS: Final = (
    "id",
    "project",
    "pipeline",
    "event_id",
    "signal",
    "status",
    "sampled_at",
    "decided_at",
    "reviewer",
    "note",
    "record",
    "context",
)


def review_service(svc: Svc) -> ReviewService:
    if svc.review is None:
        raise ApiError(503, "review is not available on this store")
    return svc.review


Review = Annotated[ReviewService, Depends(review_service)]


async def _json_body(request: Request, limit: int = MAX_BODY) -> Any:
    return await read_json_value(request, limit)


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def sample_filter(
    status: str | None = None,
    project: str | None = None,
    pipeline: str | None = None,
    signal: str | None = None,
) -> SampleFilter:
    """Query parameters as a filter; ``status=all`` (or none) is every status."""
    if status in (None, "", "all"):
        status = None
    elif status not in STATUSES:
        raise InvalidInput(
            [FieldProblem("status", f"must be one of {', '.join(STATUSES)} or all; got {status!r}")]
        )
    return SampleFilter(status, project or None, pipeline or None, signal or None)


Filter = Annotated[SampleFilter, Depends(sample_filter)]


@router.post(
    "/review/samples",
    summary="Send sampled events for review",
    description=f"One sample or a list (at most {MAX_SAMPLES}). Idempotent by (project, "
    "pipeline, event_id): a sample sent again is left as it was (the first one counts). "
    'Answers `{"accepted": n, "created": k, "ids": [...]}` once committed; 422 names every '
    "invalid field and nothing of the request is written.",
    openapi_extra=_body_doc(
        {"oneOf": [SampleIn.model_json_schema(), {"type": "array", "items": {"type": "object"}}]}
    ),
)
async def post_samples(request: Request, review: Review) -> Response:
    data = await _json_body(request)
    samples = await run_in_threadpool(parse_samples, data)
    created = await review.add_samples(samples)
    return JSON({"accepted": len(samples), "created": len(created), "ids": [s.id for s in samples]})


@router.get(
    "/review/samples",
    summary="Review samples, with filters and paging",
    description="Newest sampled first (`order=oldest` for the queue's order). `status` is "
    "pending, approved, rejected or all. `counts` are by status within the other filters.",
)
def list_samples(
    review: Review,
    f: Filter,
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    order: Annotated[str, Query(pattern="^(newest|oldest)$")] = "newest",
) -> Response:
    total, rows = review.store.list_samples(
        f, offset=(page - 1) * page_size, limit=page_size, oldest_first=order == "oldest"
    )
    return JSON(
        {
            "items": [r.out() for r in rows],
            "total": total,
            "page": page,
            "page_size": page_size,
            "pages": max(1, math.ceil(total / page_size)),
            "counts": review.store.count_by_status(f),
        }
    )


@router.get(
    "/review/samples.csv",
    summary="Review samples as CSV",
    description="The same filters as the list; oldest first; record and context as JSON.",
    responses={200: {"content": {"text/csv": {}}}},
)
def export_samples(review: Review, f: Filter) -> Response:
    rows = review.store.export_samples(f)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.id,
                r.project,
                r.pipeline,
                r.event_id,
                r.signal,
                r.status,
                r.sampled_at.isoformat(),
                r.decided_at.isoformat() if r.decided_at else "",
                r.reviewer or "",
                r.note or "",
                orjson.dumps(r.record).decode(),
                orjson.dumps(r.context).decode(),
            ]
        )
    name = "review-samples" + (f"-{f.status}" if f.status else "") + ".csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/review/summary",
    summary="Counts and the approval rate over time",
    description="`range` is 24h, 7d, 30d or 90d; `series` has one bucket per hour (24h), "
    "6 hours (7d) or day, with the decisions made in it.",
)
def get_summary(review: Review, svc: Svc, f: Filter, range: str = "7d") -> Response:
    return JSON(summary(review.store, f, range, svc.clock()))


@router.get("/review/samples/{sample_id}", summary="One review sample")
def get_sample(sample_id: str, review: Review) -> Response:
    return JSON(review.store.get_sample(sample_id).out())


@router.post(
    "/review/samples/{sample_id}/decision",
    summary="Approve or reject a sample",
    description="`outcome` approved or rejected; a rejection needs a `note`. A decision is "
    "final: a second one is 409. Counted in the metric `review.outcomes`.",
    openapi_extra=_body_doc(DecisionIn.model_json_schema()),
)
async def post_decision(sample_id: str, request: Request, review: Review) -> Response:
    decision = parse_decision(await _json_body(request, 64 * 1024))
    sample = await review.decide(sample_id, decision)
    return JSON(sample.out())


@router.get("/review/settings", summary="Every pipeline's sampling rate")
def list_settings(review: Review) -> Response:
    pipelines = review.store.list_pipelines()
    return JSON({"items": [review.rate_of(p, n).out() for p, n in pipelines]})


@router.get(
    "/review/settings/{pipeline}",
    summary="A pipeline's sampling rate",
    description="`source` says where the rate comes from: the pipeline's flow declaration "
    "(`review_rate`), its review setting, or the default (0.01).",
)
def get_setting(
    pipeline: str, review: Review, project: Annotated[str, Query(min_length=1)] = "default"
) -> Response:
    return JSON(review.rate_of(project, pipeline).out())


@router.put(
    "/review/settings/{pipeline}",
    summary="Set a pipeline's sampling rate",
    description='Body `{"rate": 0.01, "project": "default"}`, a fraction from 0.005 to 0.02. '
    "A flow declaration's review_rate, where there is one, still wins.",
    openapi_extra=_body_doc(SettingIn.model_json_schema()),
)
async def put_setting(pipeline: str, request: Request, review: Review) -> Response:
    check_name(pipeline, "pipeline")
    setting = parse_setting(await _json_body(request, 64 * 1024))
    return JSON((await review.put_rate(setting.project, pipeline, setting.rate)).out())
