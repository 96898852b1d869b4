"""A batch's stored numbers brought up to date from what one commit changed, without reading
the batch's runs again. ``batch_aggregates_sql`` in sql.py is the definition; ``advance_batch``
must always agree with it, and raises :class:`NeedsRefresh` where only the stored runs can
tell (the run holding the earliest start or latest end moved it the other way, the runs of
one batch name different envs, a run left the batch)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from flowdeck.runs import RunRecord
from flowdeck.store.base import BatchKey, BatchRow

# The count column of each status.
STATUS_COUNT: Final = {
    "SUCCESS": "succeeded",
    "FAILED": "failed",
    "RUNNING": "running",
    "PENDING": "pending",
}
SUMMED: Final = (
    "rows_read",
    "rows_written",
    "rows_invalid",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
)
# (before, after) of one run that is in the batch after the commit; ``before`` is None when
# the run was not in this batch before it (a new run, or one that moved in).
Change = tuple[RunRecord | None, RunRecord]


class NeedsRefresh(Exception):
    """Only the stored runs can tell this batch's numbers after the change."""


def dq_warning(run: RunRecord) -> bool:
    """More DQ errors than 1 % of the rows read (exact in integers: 100·dq > rows_read)."""
    return run.dq_errors is not None and run.dq_errors * 100 > (run.rows_read or 0)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _gives_up(
    before: datetime | None, after: datetime | None, extreme: datetime | None, *, earliest: bool
) -> bool:
    """The run held the batch's earliest (latest) time and now holds a later (earlier) one:
    another run may hold it now."""
    if before is None or before != extreme:
        return False
    return after is None or (after > before if earliest else after < before)


def advance_batch(
    key: BatchKey, row: BatchRow | None, changes: Iterable[Change], now: datetime
) -> BatchRow:
    """The batch's row after ``changes`` (``row`` is None for a batch not stored yet)."""
    counts = {name: 0 for name in ("total", *STATUS_COUNT.values(), *SUMMED)}
    warnings = 0
    env = started = ended = None
    # The earliest created_at is only known while no run has started (it is then sort_at).
    first_created: datetime | None = None
    if row is not None:
        for name in counts:
            counts[name] = getattr(row, name)
        warnings = row.dq_warning_processes
        env, started, ended = row.env, row.started_at, row.ended_at
        if row.started_at is None:
            first_created = row.sort_at
    for before, after in changes:
        if before is not None:
            if before.env != after.env:
                raise NeedsRefresh(key)
            if _gives_up(before.started_at, after.started_at, started, earliest=True):
                raise NeedsRefresh(key)
            if _gives_up(before.ended_at, after.ended_at, ended, earliest=False):
                raise NeedsRefresh(key)
            counts["total"] -= 1
            counts[STATUS_COUNT[before.status]] -= 1
            for name in SUMMED:
                counts[name] -= getattr(before, name) or 0
            warnings -= dq_warning(before)
        else:
            first_created = _earlier(first_created, after.created_at)
        if env is None:
            env = after.env
        elif after.env != env:
            raise NeedsRefresh(key)
        counts["total"] += 1
        counts[STATUS_COUNT[after.status]] += 1
        for name in SUMMED:
            counts[name] += getattr(after, name) or 0
        warnings += dq_warning(after)
        started = _earlier(started, after.started_at)
        ended = _later(ended, after.ended_at)
    sort_at = started if started is not None else first_created
    if env is None or sort_at is None:
        raise NeedsRefresh(key)  # no change at all: nothing to count from
    return BatchRow(
        project=key[0],
        batch_id=key[1],
        env=env,
        started_at=started,
        ended_at=ended,
        sort_at=sort_at,
        total=counts["total"],
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        running=counts["running"],
        pending=counts["pending"],
        rows_read=counts["rows_read"],
        rows_written=counts["rows_written"],
        rows_invalid=counts["rows_invalid"],
        rows_inserted=counts["rows_inserted"],
        rows_updated=counts["rows_updated"],
        dq_errors=counts["dq_errors"],
        dq_warning_processes=warnings,
        updated_at=now,
    )
