"""Counts and the approval rate over time: what the review page's cards and chart show, and
``GET /api/v1/review/summary`` answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.review.model import STATUSES, SampleFilter
from flowdeck.review.store import ReviewStore

# Range name → (length, bucket width in seconds).
RANGES: Final[Mapping[str, tuple[timedelta, int]]] = {
    "24h": (timedelta(hours=24), 3_600),
    "7d": (timedelta(days=7), 6 * 3_600),
    "30d": (timedelta(days=30), 86_400),
    "90d": (timedelta(days=90), 86_400),
}
RANGE_NAMES: Final[Mapping[str, str]] = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
}


def approval_rate(approved: int, rejected: int) -> float | None:
    decided = approved + rejected
    return approved / decided if decided else None


def check_range(value: str) -> str:
    if value not in RANGES:
        raise InvalidInput(
            [FieldProblem("range", f"must be one of {', '.join(RANGES)}; got {value!r}")]
        )
    return value


def summary(store: ReviewStore, f: SampleFilter, range_name: str, now: datetime) -> dict[str, Any]:
    """Counts by status (all time, within the filter) and, per bucket of the range, the
    decisions made and the approval rate (approved / decided)."""
    length, width = RANGES[check_range(range_name)]
    counts = store.count_by_status(f)
    until = now
    since = now - length
    # Whole buckets: the first one starts on a multiple of the width.
    start = int(since.timestamp()) // width * width
    found = {t: (a, r) for t, a, r in store.outcome_buckets(f, since, until, width)}
    series: list[dict[str, Any]] = []
    approved_in = rejected_in = 0
    for t in range(start, int(until.timestamp()) + 1, width):
        approved, rejected = found.get(t, (0, 0))
        approved_in += approved
        rejected_in += rejected
        series.append(
            {
                "t": datetime.fromtimestamp(t, UTC),
                "approved": approved,
                "rejected": rejected,
                "approval_rate": approval_rate(approved, rejected),
            }
        )
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "approval_rate": approval_rate(counts["approved"], counts["rejected"]),
        "range": range_name,
        "step_s": width,
        "in_range": {
            "approved": approved_in,
            "rejected": rejected_in,
            "approval_rate": approval_rate(approved_in, rejected_in),
        },
        "series": series,
        "by_signal": [
            {
                "signal": signal,
                **c,
                "approval_rate": approval_rate(c["approved"], c["rejected"]),
            }
            for signal, c in store.count_by_signal(f).items()
        ],
        "statuses": list(STATUSES),
    }
