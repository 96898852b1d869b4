"""Stored rows as the API shows them (the JSON twins of the models in models.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowdeck.pipelines import PipelineState
from flowdeck.runs import RunRecord

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


def pipeline_out(row: PipelineState, now: datetime) -> dict[str, Any]:
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
