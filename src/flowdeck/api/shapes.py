"""Stored rows as the API shows them (the JSON twins of the models in models.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowdeck.batches import health, success_rate
from flowdeck.runs import RunRecord
from flowdeck.store import BatchRow, PipelineRow

RUN_FIELDS = (
    "run_id",
    "project",
    "pipeline",
    "batch_id",
    "env",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "rows_read",
    "rows_written",
    "rows_invalid",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
    "dq_error_rate",
    "read_throughput",
    "write_throughput",
    "custom_stats",
    "labels",
    "error_message",
    "created_at",
    "updated_at",
)


def run_out(run: RunRecord) -> dict[str, Any]:
    return {name: getattr(run, name) for name in RUN_FIELDS}


def batch_out(row: BatchRow) -> dict[str, Any]:
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
        "health": health(row.total, row.succeeded, row.failed).value,
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


def pipeline_out(row: PipelineRow, now: datetime) -> dict[str, Any]:
    return {
        "project": row.project,
        "pipeline": row.pipeline,
        "env": row.env,
        "runs": row.runs,
        "last_run_id": row.last_run_id,
        "last_run_at": row.last_run_at,
        "last_status": row.last_status,
        "last_success_at": row.last_success_at,
        "seconds_since_success": (now - row.last_success_at).total_seconds()
        if row.last_success_at is not None
        else None,
        "consecutive_failures": row.consecutive_failures,
    }
