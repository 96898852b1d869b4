"""JSON responses rendered with orjson (datetimes as ISO-8601, fast on large pages)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY)
