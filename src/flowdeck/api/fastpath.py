"""POST /api/v1/runs taken before FastAPI's routing and dependency machinery.

It is the request flowdeck gets most often, and for a single run most of its cost was that
machinery (about 80 µs of 100 on the event loop, which the writer's group commit waits on).
The route in runs.py stays the documented one; this middleware answers the same request
with the same handler and the same error mapping."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from flowdeck.api.errors import domain_response
from flowdeck.api.runs import ingest
from flowdeck.api.services import Services

PATH = "/api/v1/runs"


class IngestFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        svc: Services = request.app.state.services
        try:
            response = await ingest(request, svc)
        except Exception as exc:
            mapped = domain_response(exc)
            if mapped is None:
                raise
            response = mapped
        await response(scope, receive, send)
