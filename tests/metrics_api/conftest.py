"""The API client fixtures of tests/api, on both backends, plus helpers for points."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries import sketch
from flowdeck.timeseries.points import PointBatch, parse_points
from tests.api.conftest import client, make_client

__all__ = ["batch_of", "client", "make_client", "secs"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def secs(at: datetime) -> float:
    return (at - EPOCH).total_seconds()


def batch_of(points: Sequence[dict[str, Any]]) -> PointBatch:
    """Points as the API would validate them."""
    return parse_points(orjson.dumps(list(points)), 10_000_000)


def series_summary(
    ms: MetricsSql, project: str, name: str, level: int, start: int, end: int, step: int
) -> dict[tuple[int, int], tuple[int, float, float, float]]:
    """(series_id, bucket) → (count, sum, min, max) of every series of a metric: the grouped
    read with each series a group of its own."""
    members = {sid: sid for sid in ms.list_metric_series(project, name)}
    rows = ms.summarize_groups(members, level, start, end, step)
    return {(sid, bucket): (n, total, lo, hi) for sid, bucket, n, total, lo, hi in rows}


def series_bins(
    ms: MetricsSql, project: str, name: str, level: int, start: int, end: int, step: int
) -> dict[tuple[int, int], list[sketch.Bin]]:
    """(series_id, bucket) → the sketch bins of every series of a metric."""
    members = {sid: sid for sid in ms.list_metric_series(project, name)}
    return ms.group_bins(members, level, start, end, step)
