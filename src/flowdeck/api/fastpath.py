"""POST /api/v1/runs answered in plain ASGI, before FastAPI and its middleware.

It is the request flowdeck gets most often, and for a single run most of the event loop's
time went to the layers around the handler (error, telemetry and body-limit middleware,
routing, request and response objects): about 40 % of it, time during which the writer's
group commit waits. ``IngestFront`` takes the request before all of them, reads the body
with the same checks (``body.check_headers`` and ``body.collect``), runs the same handler
(``runs.ingest``) and maps errors as the app does. The route in runs.py stays the
documented one and answers the same request identically (``tests/test_fastpath.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Final

import orjson
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from flowdeck.api.body import check_headers, collect
from flowdeck.api.errors import domain_response
from flowdeck.api.runs import ingest
from flowdeck.api.services import Services

PATH: Final = "/api/v1/runs"
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
log = logging.getLogger("flowdeck")


class _Gone(Exception):
    """The client went away before its body arrived: nothing to answer."""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Gone
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _header(scope: Scope) -> Any:
    headers = scope["headers"]

    def get(name: str) -> str | None:
        key = name.encode("latin-1")
        for k, v in headers:
            if k == key:
                return v.decode("latin-1")  # type: ignore[no-any-return]
        return None

    return get


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def handle(svc: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one POST /api/v1/runs."""
    try:
        limit = svc.settings.max_body_bytes
        inflater = check_headers(_header(scope), limit)
        body = await collect(_chunks(receive), inflater, limit)
        out = await ingest(body, svc)
    except _Gone:
        return
    except Exception as exc:
        response = domain_response(exc)
        if response is None:
            log.exception("POST %s failed", PATH)
            await _send_json(send, 500, b'{"message":"internal server error"}')
            return
        await response(scope, receive, send)
        return
    await _send_json(send, 200, orjson.dumps(out))


class IngestFront(FastAPI):
    """The flowdeck app: FastAPI, with POST /api/v1/runs taken before its middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            svc = getattr(self.state, "services", None)
            if svc is not None:
                scope["app"] = self
                await handle(svc, scope, receive, send)
                return
        await super().__call__(scope, receive, send)
