"""The ingest requests answered before FastAPI and its middleware.

POST /api/v1/runs is the request flowdeck gets most often, and for a single run most of the
event loop's time went to the layers around the handler (error, telemetry and body-limit
middleware, routing, request and response objects): about 40 % of it, time during which the
writer's group commit waits. ``IngestFront`` takes it before all of them, in plain ASGI:
it reads the body with the same checks (``body.check_headers`` and ``body.collect``), runs
the same handler (``runs.ingest``) and maps errors as the app does. POST /api/v1/lineage
(as OpenLineage clients send it, with at most ``env`` and ``project`` in its query) goes
to its route's own function the same way. The routes stay the documented ones and answer
the same requests identically (``tests/api/test_fastpath.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from flowdeck.api.body import check_headers, collect
from flowdeck.api.errors import domain_response
from flowdeck.api.lineage import post_lineage
from flowdeck.api.runs import ingest
from flowdeck.api.services import Services

PATH: Final = "/api/v1/runs"
LINEAGE: Final = "/api/v1/lineage"
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


async def _answer_error(exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    """The app's answer to an error of a request taken here: its domain response, else a
    500 (logged)."""
    response = domain_response(exc)
    if response is None:
        log.exception("POST %s failed", scope["path"])
        await _send_json(send, 500, b'{"message":"internal server error"}')
        return
    await response(scope, receive, send)


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
        await _answer_error(exc, scope, receive, send)
        return
    await _send_json(send, 200, orjson.dumps(out))


def lineage_params(query: bytes) -> dict[str, str] | None:
    """``env`` and ``project`` of a lineage request's query when each is given at most once
    and is as the route accepts it (1-200 characters); None for anything else, which the
    route answers (with its own error where there is one)."""
    # Read as Starlette reads a query string.
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= {"env", "project"}:
        return None
    if not all(1 <= len(v) <= 200 for v in params.values()):
        return None
    return params


async def handle_lineage(
    svc: Services, params: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one POST /api/v1/lineage whose query ``lineage_params`` read."""
    try:
        response = await post_lineage(Request(scope, receive), svc, **params)
    except ClientDisconnect:
        return
    except Exception as exc:
        await _answer_error(exc, scope, receive, send)
        return
    await response(scope, receive, send)


class IngestFront(FastAPI):
    """The flowdeck app: FastAPI, with the ingest requests taken before its middleware."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            svc = getattr(self.state, "services", None)
            path = scope["path"]
            if svc is not None and path == PATH:
                scope["app"] = self
                await handle(svc, scope, receive, send)
                return
            if svc is not None and path == LINEAGE:
                params = lineage_params(scope["query_string"])
                if params is not None:
                    scope["app"] = self
                    await handle_lineage(svc, params, scope, receive, send)
                    return
        await super().__call__(scope, receive, send)
