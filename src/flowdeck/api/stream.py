"""GET /api/v1/stream: Server-Sent Events of committed changes.

Bursts are coalesced: after the first change a client waits a moment and sends one ``run``
event for everything committed meanwhile, plus one ``batch`` event per batch that changed
(its latest aggregates). A client that falls too far behind gets ``resync`` (reload) instead
of an unbounded backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import StreamingResponse

from flowdeck.api.services import Services, services
from flowdeck.events import Change, EventBus

router = APIRouter(tags=["stream"])

HEARTBEAT_S = 15.0
COALESCE_S = 0.25
MAX_RUNS_PER_EVENT = 500


def sse(event: str, data: Any, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {orjson.dumps(data, option=orjson.OPT_UTC_Z).decode()}\n\n"


def _wanted(item: dict[str, Any], project: str | None, batch_id: str | None) -> bool:
    return (project is None or item["project"] == project) and (
        batch_id is None or item["batch_id"] == batch_id
    )


def render(changes: list[Change], project: str | None, batch_id: str | None) -> str:
    runs: dict[str, dict[str, Any]] = {}
    batches: dict[tuple[str, str], dict[str, Any]] = {}
    for change in changes:
        for run in change.runs:
            if _wanted(run, project, batch_id):
                runs[run["run_id"]] = run
        for batch in change.batches:
            if _wanted(batch, project, batch_id):
                batches[(batch["project"], batch["batch_id"])] = batch
    seq = changes[-1].seq
    out = []
    if runs:
        items = list(runs.values())
        out.append(
            sse(
                "run",
                {
                    "count": len(items),
                    "truncated": len(items) > MAX_RUNS_PER_EVENT,
                    "runs": items[:MAX_RUNS_PER_EVENT],
                },
                seq,
            )
        )
    out.extend(sse("batch", batch, seq) for batch in batches.values())
    return "".join(out)


async def changes_stream(
    bus: EventBus, project: str | None, batch_id: str | None
) -> AsyncIterator[str]:
    with bus.subscribe() as sub:
        yield "retry: 3000\n: connected\n\n"
        while True:
            try:
                first = await asyncio.wait_for(sub.queue.get(), timeout=HEARTBEAT_S)
            except TimeoutError:
                yield ": ping\n\n"
                continue
            await asyncio.sleep(COALESCE_S)
            changes = [first]
            while not sub.queue.empty():
                changes.append(sub.queue.get_nowait())
            if sub.overflowed:
                sub.overflowed = False
                yield sse(
                    "resync", {"reason": "changes may have been missed; reload"}, changes[-1].seq
                )
                continue
            text = render(changes, project, batch_id)
            if text:
                yield text


@router.get(
    "/stream",
    summary="Server-Sent Events of committed changes (run, batch, resync)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    svc: Annotated[Services, Depends(services)],
    project: Annotated[str | None, Query(description="only this project")] = None,
    batch_id: Annotated[str | None, Query(description="only this batch")] = None,
) -> StreamingResponse:
    return StreamingResponse(
        changes_stream(svc.bus, project, batch_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
