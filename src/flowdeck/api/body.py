"""Reading a JSON request body within the size limit, before anything is parsed."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import Request

from flowdeck.api.errors import ApiError

JSON_TYPES = ("application/json",)


def check_headers(header: Callable[[str], str | None], max_bytes: int) -> Any:
    """Refuse a body by its headers (``header`` gives one by its lower-case name): 415
    for another content type or encoding, 413 for a declared length over ``max_bytes``.
    Returns the gzip inflater the body needs, or None."""
    ctype = (header("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES and not ctype.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'nothing'!r}")
    declared = header("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    encoding = (header("content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise ApiError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    return zlib.decompressobj(wbits=31) if encoding == "gzip" else None


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"request body is larger than the limit of {max_bytes} bytes")


async def collect(chunks: AsyncIterator[bytes], inflater: Any, max_bytes: int) -> bytes:
    """The body from its chunks, inflated by ``inflater`` when there is one: 413 past
    ``max_bytes`` (after inflating), 400 for bad gzip or an empty body."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            if inflater is not None:
                chunk = inflater.decompress(chunk, max_bytes + 1 - size)
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            parts.append(chunk)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip: {exc}") from None
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if not body.strip():
        raise ApiError(400, "request body is empty; send JSON")
    return body


async def read_json(request: Request, max_bytes: int) -> bytes:
    """The body's bytes, once checked to be JSON by its headers. 415 for another content
    type or encoding, 413 over ``max_bytes`` (also after gzip decoding), 400 when empty.
    Parsing is left to the caller, who knows the shape it expects."""
    inflater = check_headers(request.headers.get, max_bytes)
    return await collect(request.stream(), inflater, max_bytes)


async def read_json_value(request: Request, max_bytes: int) -> Any:
    """The body read as ``read_json`` reads it, parsed; 400 when it is not JSON."""
    raw = await read_json(request, max_bytes)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
