"""POST /api/v1/lineage: OpenLineage RunEvents, as the openlineage-python HTTP transport
sends them (its default endpoint, an optional ``Authorization: Bearer`` API key, gzip)."""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.ingest.openlineage import BadJson, Defaults, TooManyEvents, parse_events

router = APIRouter(tags=["lineage"])

# Comma-separated; several keys let one be rotated out while the other is in use.
API_KEYS_ENV = "FLOWDECK_LINEAGE_API_KEYS"
INLINE_PARSE_BYTES = 64 * 1024


def api_keys() -> list[str]:
    raw = os.environ.get(API_KEYS_ENV, "")
    return [key.strip() for key in raw.split(",") if key.strip()]


def refused(request: Request) -> Response | None:
    """Without configured keys the endpoint is open, like POST /runs; with keys, a request
    must carry one of them as ``Authorization: Bearer <key>``: else a 401 to send back."""
    keys = api_keys()
    if not keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        message = "Authorization: Bearer <API key> is required"
    elif not any(hmac.compare_digest(token.strip().encode(), k.encode()) for k in keys):
        message = "the API key is not valid"
    else:
        return None
    challenge = {"WWW-Authenticate": 'Bearer realm="flowdeck"'}
    return JSON({"message": message}, status_code=401, headers=challenge)


_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": "an OpenLineage RunEvent (https://openlineage.io/spec) "
                    "or a list of them",
                    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
                }
            }
        },
    }
}


@router.post(
    "/lineage",
    summary="Receive OpenLineage RunEvents (one or a list)",
    description=(
        "Each RunEvent updates the run it names (run.runId); events may arrive out of order "
        "or twice. DatasetEvents and JobEvents are accepted and ignored. 422 names every "
        "invalid field and nothing of the request is written; 401 without a valid API key "
        f"when {API_KEYS_ENV} is set."
    ),
    openapi_extra=_BODY_DOC,
    responses={401: {"description": "API key missing or wrong"}, 413: {"description": "too large"}},
)
async def post_lineage(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    env: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="env of runs whose events name none"),
    ] = None,
    project: Annotated[
        str | None, Query(min_length=1, max_length=200, description="project of these runs")
    ] = None,
) -> Response:
    if (refusal := refused(request)) is not None:
        return refusal
    body = await read_json(request, svc.settings.max_body_bytes)
    defaults = Defaults(env=env, project=project)
    limit = svc.settings.max_runs_per_request
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            reports, locate, ignored = parse_events(body, limit, defaults)
        else:
            reports, locate, ignored = await run_in_threadpool(parse_events, body, limit, defaults)
    except TooManyEvents as exc:
        raise ApiError(413, str(exc)) from None
    except BadJson as exc:
        raise ApiError(400, str(exc)) from None
    run_ids = await svc.writer.write(reports, locate) if reports else []
    unique = list(dict.fromkeys(run_ids))
    return JSON({"accepted": len(run_ids), "run_ids": unique, "ignored": ignored})
