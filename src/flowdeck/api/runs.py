"""POST /api/v1/runs (ingest) and GET /api/v1/runs/{run_id} (detail with history)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.api.shapes import run_out
from flowdeck.ingest.columnar import MIN_BODY_BYTES, read_columnar
from flowdeck.ingest.reports import BadJson, TooManyRuns, parse_reports
from flowdeck.models import Accepted, RunDetail
from flowdeck.store.bulk import RunsExist

router = APIRouter(tags=["runs"])

# Bodies up to this size are validated on the event loop: a thread hop costs more.
INLINE_PARSE_BYTES = 64 * 1024

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/RunIn"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/RunIn"},
                            "maxItems": 10_000,
                        },
                    ]
                }
            }
        },
    }
}


@router.post(
    "/runs",
    response_model=Accepted,
    summary="Report one run or a list of runs",
    description=(
        "Upserts by run_id (generated when absent). Answers only after the runs are "
        "committed. Timestamps must carry a zone offset. 422 names every invalid field and "
        "nothing of the request is written; 413 over the body or run-count limit; 415 for "
        "a body that is not JSON."
    ),
    openapi_extra=_BODY_DOC,
    responses={413: {"description": "too large"}, 415: {"description": "not JSON"}},
)
async def post_runs(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    body = await read_json(request, svc.settings.max_body_bytes)
    return JSON(await ingest(body, svc))


async def ingest(body: bytes, svc: Services) -> dict[str, Any]:
    """POST /api/v1/runs once its body is read (also reached without FastAPI: see
    fastpath.py): what the response says."""
    limit = svc.settings.max_runs_per_request
    if svc.writer.takes_columns and len(body) >= MIN_BODY_BYTES:
        # A list of new runs goes in as columns; anything else (or a run seen before)
        # takes the general path below, with the same result.
        columns = await run_in_threadpool(read_columnar, body, limit)
        if columns is not None:
            try:
                written = await svc.writer.write_columns(columns)
            except RunsExist:
                pass
            else:
                return {"accepted": len(written), "run_ids": written}
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            reports, locate = parse_reports(body, limit)
        else:
            # Validating 10,000 runs takes tens of milliseconds: keep it off the event loop.
            reports, locate = await run_in_threadpool(parse_reports, body, limit)
    except TooManyRuns as exc:
        raise ApiError(413, str(exc)) from None
    except BadJson as exc:
        raise ApiError(400, str(exc)) from None
    run_ids = await svc.writer.write(reports, locate)
    unique = list(dict.fromkeys(run_ids))
    return {"accepted": len(unique), "run_ids": unique}


@router.get(
    "/runs/{run_id}", response_model=RunDetail, summary="One run and its pipeline's history"
)
def get_run(
    run_id: str,
    svc: Annotated[Services, Depends(services)],
    history: Annotated[int, Query(ge=0, le=500, description="how many recent runs")] = 50,
) -> Response:
    run = svc.store.get_run(run_id)
    out = run_out(run)
    out["history"] = (
        [
            run_out(r)
            for r in svc.store.list_pipeline_runs(run.project, run.pipeline, run.env, history)
        ]
        if history
        else []
    )
    return JSON(out)
