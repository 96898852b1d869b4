"""GET /api/v1/stream: Server-Sent Events of committed changes.

Bursts are coalesced: after the first change a client waits a moment and sends one ``run``
event for everything committed meanwhile, plus one ``batch`` event per batch that changed
(its latest aggregates), plus one ``alert`` event when alerting had news (an alert moved,
a notification arrived or was read, an alert was acknowledged or silenced). ``topics``
narrows what a client hears (the pages' notification bell asks for ``alert`` only). A client
that falls too far behind gets ``resync`` (reload) instead of an unbounded backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import StreamingResponse

from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.events import Change, EventBus

router = APIRouter(tags=["stream"])

HEARTBEAT_S = 15.0
COALESCE_S = 0.25
MAX_RUNS_PER_EVENT = 500
MAX_ALERTS_PER_EVENT = 50


def sse(event: str, data: Any, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {orjson.dumps(data, option=orjson.OPT_UTC_Z).decode()}\n\n"


def _wanted(item: dict[str, Any], project: str | None, batch_id: str | None) -> bool:
    return (project is None or item["project"] == project) and (
        batch_id is None or item["batch_id"] == batch_id
    )


TOPICS = frozenset({"run", "batch", "alert"})
# Asked for by name only: metric points arrive often, and few pages show them.
KNOWN_TOPICS = TOPICS | {"metric"}
MAX_METRIC_NAMES = 100


def render(
    changes: list[Change],
    project: str | None,
    batch_id: str | None,
    topics: frozenset[str] = TOPICS,
) -> str:
    runs: dict[str, dict[str, Any]] = {}
    batches: dict[tuple[str, str], dict[str, Any]] = {}
    news: list[dict[str, Any]] = []
    metrics: set[str] = set()
    for change in changes:
        news.extend(change.alerts)
        metrics.update(change.metrics)
        for run in change.runs:
            if _wanted(run, project, batch_id):
                runs[run["run_id"]] = run
        for batch in change.batches:
            if _wanted(batch, project, batch_id):
                batches[(batch["project"], batch["batch_id"])] = batch
    seq = changes[-1].seq
    out = []
    if "run" not in topics:
        runs = {}
    if "batch" not in topics:
        batches = {}
    if "alert" not in topics:
        news = []
    if "metric" not in topics:
        metrics = set()
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
    if news:
        # Not filtered by project or batch: the notification centre is everyone's.
        out.append(sse("alert", {"count": len(news), "items": news[:MAX_ALERTS_PER_EVENT]}, seq))
    if metrics:
        names = sorted(metrics)
        out.append(sse("metric", {"count": len(names), "names": names[:MAX_METRIC_NAMES]}, seq))
    return "".join(out)


def resume_from(value: str | None) -> int | None:
    """A client's last event id (``Last-Event-ID``); -1 for one that names no event."""
    if value is None or not value.strip():
        return None
    return int(value) if value.strip().isdigit() else -1


async def changes_stream(
    bus: EventBus,
    project: str | None,
    batch_id: str | None,
    topics: frozenset[str] = TOPICS,
    last_event_id: int | None = None,
) -> AsyncIterator[str]:
    with bus.subscribe() as sub:
        # Subscribed and replayed in one step of the loop: nothing falls in between.
        backlog = bus.replay(last_event_id) if last_event_id is not None else []
        yield "retry: 3000\n: connected\n\n"
        if backlog is None:
            reason = f"cannot resume after event {last_event_id}; reload"
            yield sse("resync", {"reason": reason}, bus.last_event_id)
        elif backlog:
            yield render(backlog, project, batch_id, topics) or f"id: {backlog[-1].seq}\n\n"
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
            text = render(changes, project, batch_id, topics)
            if text:
                yield text


@router.get(
    "/stream",
    summary="Server-Sent Events of committed changes (run, batch, alert, resync)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    svc: Annotated[Services, Depends(services)],
    project: Annotated[str | None, Query(description="only this project")] = None,
    batch_id: Annotated[str | None, Query(description="only this batch")] = None,
    topics: Annotated[
        str | None,
        Query(description="comma list of run, batch, alert, metric (default: run, batch, alert)"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            description="resume after this event id (a Last-Event-ID header, which browsers "
            "send when they reconnect, wins)"
        ),
    ] = None,
    last_event_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    wanted = TOPICS
    if topics:
        wanted = frozenset(t.strip() for t in topics.split(",") if t.strip())
        if unknown := sorted(wanted - KNOWN_TOPICS):
            raise InvalidInput(
                [
                    FieldProblem(
                        "topics", f"unknown topic {unknown[0]!r}: use run, batch, alert, metric"
                    )
                ]
            )
    return StreamingResponse(
        changes_stream(
            svc.bus, project, batch_id, wanted, resume_from(last_event_header or last_event_id)
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
