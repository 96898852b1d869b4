"""The API client fixtures of tests/api, on both backends, plus helpers for points."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from flowdeck.timeseries.points import PointBatch, parse_points
from tests.api.conftest import client, make_client

__all__ = ["batch_of", "client", "make_client", "secs"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def secs(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


def batch_of(points: Sequence[dict[str, Any]]) -> PointBatch:
    """Points as the API would validate them."""
    return parse_points(orjson.dumps(list(points)), 10_000_000)
