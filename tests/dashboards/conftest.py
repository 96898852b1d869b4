"""The API client fixtures of tests/api (both backends), and a valid dashboard body."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import client, make_client

__all__ = ["board", "client", "make_client", "widget"]


def widget(wid: str = "w1", kind: str = "line", x: int = 0, y: int = 0, **extra: Any) -> Any:
    out: dict[str, Any] = {
        "id": wid,
        "type": kind,
        "title": f"Widget {wid}",
        "grid": {"x": x, "y": y, "w": 6, "h": 4},
    }
    if kind not in ("alerts", "batch_status"):
        out["query"] = {"metric": "runs.count", "aggregation": "count", "group_by": ["status"]}
    out.update(extra)
    return out


def board(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": "Ops",
        "description": "what ops watches",
        "time_range": {"last": "7d"},
        "refresh": "5s",
        "widgets": [widget("w1"), widget("w2", "alerts", x=6)],
    }
    out.update(extra)
    return out
