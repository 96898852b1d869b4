"""The Jinja environment of the pages: templates, filters and versioned static URLs."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.templating import Jinja2Templates

from flowdeck.web.format import FILTERS, ago
from flowdeck.web.live import stream_url

HERE = Path(__file__).parent
STATIC = HERE / "static"

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(FILTERS)
templates.env.trim_blocks = True
templates.env.lstrip_blocks = True


@cache
def _digest(name: str) -> str:
    try:
        return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]
    except OSError:
        return "missing"


def static(name: str) -> str:
    """``/static/<name>?v=<content digest>``: browsers may cache it for as long as they like."""
    return f"/static/{name}?v={_digest(name)}"


templates.env.globals["static"] = static
templates.env.globals["ago"] = ago
templates.env.globals["stream_url"] = stream_url
