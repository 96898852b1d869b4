"""Batch health as DESIGN.md defines it, and a batch as the API and the stream show it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from flowdeck.models import Health

if TYPE_CHECKING:
    from flowdeck.store.base import BatchRow

HEALTHY_SUCCESS_RATE: Final = 0.9
DQ_WARNING_RATE: Final = 0.01


def success_rate(total: int, succeeded: int) -> float:
    return succeeded / total if total else 0.0


def health(total: int, succeeded: int, failed: int) -> Health:
    """Green: every process succeeded. Yellow: no failure and success rate >= 90 %
    (the rest still pending or running). Red: any failure, or success rate < 90 %."""
    if total and succeeded == total:
        return Health.GREEN
    if failed == 0 and success_rate(total, succeeded) >= HEALTHY_SUCCESS_RATE:
        return Health.YELLOW
    return Health.RED


def health_reason(colour: Health, total: int, succeeded: int, failed: int, unfinished: int) -> str:
    """Why a batch has its health (``colour``), in its own numbers (what the dashboard's
    badge says)."""
    still = f", {unfinished:,} still running or pending" if unfinished else ""
    match colour:
        case Health.GREEN:
            return "every process succeeded"
        case Health.YELLOW:
            return f"no failures so far{still}"
    if failed:
        return f"{failed:,} {'process' if failed == 1 else 'processes'} failed{still}"
    if not total:
        return "no processes"
    return f"{succeeded:,} of {total:,} succeeded, under 90 %{still}"


def batch_out(row: BatchRow) -> dict[str, Any]:
    colour = health(row.total, row.succeeded, row.failed)
    return {
        "project": row.project,
        "batch_id": row.batch_id,
        "env": row.env,
        "started_at": row.started_at,
        "ended_at": None if row.open else row.ended_at,
        "total": row.total,
        "succeeded": row.succeeded,
        "failed": row.failed,
        "running": row.running,
        "pending": row.pending,
        "success_rate": success_rate(row.total, row.succeeded),
        "health": colour.value,
        "health_reason": health_reason(
            colour, row.total, row.succeeded, row.failed, row.running + row.pending
        ),
    }


def batch_summary(row: BatchRow) -> dict[str, Any]:
    out = batch_out(row)
    ended = out["ended_at"]
    out.update(
        dq_errors=row.dq_errors,
        dq_error_rate=row.dq_errors / row.rows_read if row.rows_read else None,
        dq_warning_processes=row.dq_warning_processes,
        rows={
            "read": row.rows_read,
            "written": row.rows_written,
            "invalid": row.rows_invalid,
            "inserted": row.rows_inserted,
            "updated": row.rows_updated,
        },
        duration_s=(ended - row.started_at).total_seconds()
        if ended is not None and row.started_at is not None
        else None,
        updated_at=row.updated_at,
    )
    return out
