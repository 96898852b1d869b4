"""Where a page's live updates start: the last change the bus had handed out when the
request came in, before the page read its data. The page's stream resumes after it, so a
change that lands while the page is being rendered is not missed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

STREAM = "/api/v1/stream"


class LiveFrom:
    """ASGI middleware: notes ``live_from`` in the request's state for every GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            services = getattr(scope["app"].state, "services", None)
            if services is not None:
                scope.setdefault("state", {})["live_from"] = services.bus.last_event_id
        await self.app(scope, receive, send)


def stream_url(request: Request, **params: Any) -> str:
    """The change stream for a page: its filters, resuming after the request's start."""
    live_from = getattr(request.state, "live_from", None)
    if live_from is not None:
        params["last_event_id"] = live_from
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{STREAM}?{query}" if query else STREAM
