"""Reading a JSON request body within the size limit, before anything is parsed."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from flowdeck.api.errors import ApiError

JSON_TYPES = ("application/json",)


async def read_json(request: Request, max_bytes: int) -> bytes:
    """The body's bytes, once checked to be JSON by its headers. 415 for another content
    type or encoding, 413 over ``max_bytes`` (also after gzip decoding), 400 when empty.
    Parsing is left to the caller, who knows the shape it expects."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'nothing'!r}")
    too_large = ApiError(413, f"request body is larger than the limit of {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    inflater = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            if inflater is not None:
                chunk = inflater.decompress(chunk, max_bytes + 1 - size)
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            parts.append(chunk)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip: {exc}") from None
    body = b"".join(parts)
    if not body.strip():
        raise ApiError(400, "request body is empty; send JSON")
    return body


async def read_json_value(request: Request, max_bytes: int) -> Any:
    """The body read as ``read_json`` reads it, parsed; 400 when it is not JSON."""
    raw = await read_json(request, max_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
