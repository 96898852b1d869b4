"""GET /healthz: is the database answering and is the writer keeping up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from flowdeck import __version__
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and readiness")
def healthz(svc: Annotated[Services, Depends(services)]) -> Response:
    stats = svc.writer.stats
    body: dict[str, object] = {
        "status": "ok",
        "version": __version__,
        "database": svc.store.backend,
        "writer": {
            "queue_depth": svc.writer.queue_depth,
            "commits": stats.commits,
            "runs_written": stats.runs_written,
            "last_commit_ms": round(stats.last_commit_seconds * 1000, 3),
        },
        "stream_clients": svc.bus.subscribers,
    }
    try:
        svc.store.ping()
    except StoreUnavailable as exc:
        body.update(status="unavailable", error=str(exc))
        return JSON(body, status_code=503)
    return JSON(body)
