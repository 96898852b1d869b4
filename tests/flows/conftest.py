"""Fixtures of the flow tests: the API client of tests/api (both backends), a valid flow
declaration, and metric points in the shape POST /api/v1/metrics/points takes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tests.api.conftest import client, make_client

__all__ = ["client", "declaration", "make_client", "series"]


def declaration(**extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": "Market signals",
        "description": "streaming enrichment",
        "stages": [
            {"name": "ingest", "queue_capacity": 100, "capacity_per_s": 50},
            {"name": "enrich", "queue_capacity": 1000, "capacity_per_s": 5},
            {"name": "store"},
        ],
        "signals": ["sales_activity", "field_reports"],
    }
    out.update(extra)
    return out


def series(
    name: str,
    times: Sequence[float | datetime],
    values: Sequence[float],
    pipeline: str = "ms",
    **tags: str,
) -> dict[str, Any]:
    """One series in columns; times as seconds since 1970 or aware datetimes."""
    return {
        "name": name,
        "tags": {"pipeline": pipeline, **tags},
        "times": [t.timestamp() if isinstance(t, datetime) else t for t in times],
        "values": list(values),
    }
