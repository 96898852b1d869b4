"""Batch performance per day (success rate, failures, DQ error rate) and the duration of
each batch, computed from the stored batch aggregates: no scan of run history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowdeck.batches import health, success_rate

if TYPE_CHECKING:
    from flowdeck.store.base import BatchRow


def batch_day(row: BatchRow) -> date:
    """The UTC day a batch belongs to: the day it started."""
    return (row.started_at or row.sort_at).date()


def batch_duration_s(row: BatchRow) -> float | None:
    """Wall time from the first start to the last end; None while any run is open."""
    if row.open or row.started_at is None or row.ended_at is None:
        return None
    return (row.ended_at - row.started_at).total_seconds()


def daily_trends(batches: Sequence[BatchRow], since: datetime, until: datetime) -> dict[str, Any]:
    """One entry per UTC day from ``since`` to ``until`` (days without batches included, with
    null rates, so charts show the gap) and one entry per batch, oldest first."""
    first, last = since.date(), until.date()
    days: dict[date, dict[str, int]] = {}
    day = first
    while day <= last:
        days[day] = dict.fromkeys(
            ("batches", "processes", "succeeded", "failed", "dq_errors", "rows_read"), 0
        )
        day += timedelta(days=1)
    for row in batches:
        bucket = days.get(batch_day(row))
        if bucket is None:
            continue
        bucket["batches"] += 1
        bucket["processes"] += row.total
        bucket["succeeded"] += row.succeeded
        bucket["failed"] += row.failed
        bucket["dq_errors"] += row.dq_errors
        bucket["rows_read"] += row.rows_read
    per_day = [
        {
            "day": d.isoformat(),
            **counts,
            # Of the processes that finished: today's open batch must not look like a dip.
            "success_rate": success_rate(finished, counts["succeeded"]) if finished else None,
            "dq_error_rate": counts["dq_errors"] / counts["rows_read"]
            if counts["rows_read"]
            else None,
        }
        for d, counts in days.items()
        for finished in (counts["succeeded"] + counts["failed"],)
    ]
    per_batch = [
        {
            "project": row.project,
            "batch_id": row.batch_id,
            "env": row.env,
            "started_at": row.started_at,
            "ended_at": None if row.open else row.ended_at,
            "duration_s": batch_duration_s(row),
            "total": row.total,
            "failed": row.failed,
            "health": health(row.total, row.succeeded, row.failed).value,
        }
        for row in sorted(batches, key=lambda b: (b.started_at or b.sort_at, b.batch_id))
    ]
    return {"days": per_day, "batches": per_batch}
