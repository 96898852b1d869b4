"""Runs as flowdeck stores them: derivation of status and fields, and the merge of a report
into what is already known about the same run_id (DESIGN.md, "Data model")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from flowdeck.models import Status

RANK: Final = {"PENDING": 0, "RUNNING": 1, "SUCCESS": 2, "FAILED": 2}

# Fields a report sets directly; a report's missing (null) field never erases a stored one.
PLAIN_FIELDS: Final = (
    "project",
    "pipeline",
    "batch_id",
    "env",
    "started_at",
    "ended_at",
    "duration_s",
    "rows_read",
    "rows_written",
    "rows_invalid",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
    "read_throughput",
    "write_throughput",
    "error_message",
)
# Fields flowdeck computes when the reports leave them out; recomputed after every merge.
# ("status" is marked derived too when no report stated it.)
DERIVABLE: Final = (
    "duration_s",
    "read_throughput",
    "write_throughput",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
)
DEFAULT_PROJECT: Final = "default"
DEFAULT_ENV: Final = "default"


class RunProblem(ValueError):
    """A report that cannot be merged; ``field`` names the offending field."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


@dataclass(slots=True)
class RunRecord:
    """One stored run: every column of the ``runs`` table."""

    run_id: str
    project: str
    pipeline: str
    batch_id: str
    env: str
    status: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    rows_read: int | None = None
    rows_written: int | None = None
    rows_invalid: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    dq_errors: int | None = None
    read_throughput: float | None = None
    write_throughput: float | None = None
    custom_stats: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    error_message: str | None = None
    derived: frozenset[str] = frozenset()

    @property
    def dq_error_rate(self) -> float | None:
        if not self.rows_read:
            return None
        return (self.dq_errors or 0) / self.rows_read


def as_count(value: Any) -> int | None:
    """A custom_stats value read as a row count, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def derive_status(rec: dict[str, Any], duration_provided: bool) -> str:
    """Status of a report that names none (legacy ``pipeline_stats`` rows)."""
    if rec.get("started_at") is None:
        return Status.PENDING
    if rec.get("ended_at") is None:
        return Status.RUNNING
    if (rec.get("rows_invalid") or 0) > 0 or not duration_provided:
        return Status.FAILED
    return Status.SUCCESS


def _derive(rec: dict[str, Any]) -> set[str]:
    """Fill derivable fields left empty; returns the names it filled."""
    done: set[str] = set()
    started, ended = rec.get("started_at"), rec.get("ended_at")
    if rec.get("duration_s") is None and started is not None and ended is not None:
        rec["duration_s"] = max((ended - started).total_seconds(), 0.0)
        done.add("duration_s")
    duration = rec.get("duration_s")
    for rows, out in (("rows_read", "read_throughput"), ("rows_written", "write_throughput")):
        if rec.get(out) is None and rec.get(rows) is not None and duration and duration > 0:
            rec[out] = rec[rows] / duration
            done.add(out)
    stats = rec.get("custom_stats") or {}
    for out, key in (("rows_inserted", "scd2_new"), ("rows_updated", "scd2_changed")):
        if rec.get(out) is None and (n := as_count(stats.get(key))) is not None:
            rec[out] = n
            done.add(out)
    if rec.get("dq_errors") is None:
        if rec.get("rows_invalid") is not None:
            rec["dq_errors"] = rec["rows_invalid"]
        else:
            rec["dq_errors"] = as_count(stats.get("dq_failed_rows")) or 0
        done.add("dq_errors")
    return done


def check_report(report: dict[str, Any]) -> None:
    """Rules that concern one report on its own (its shape is already validated)."""
    started, ended = report.get("started_at"), report.get("ended_at")
    if started is not None and ended is not None and ended < started:
        raise RunProblem("ended_at", "must not be before started_at")
    for key in ("duration_s", "read_throughput", "write_throughput"):
        value = report.get(key)
        if value is not None and not math.isfinite(value):
            raise RunProblem(key, "must be a finite number")


def merge(existing: RunRecord | None, report: dict[str, Any], now: datetime) -> RunRecord:
    """What is known of a run after ``report`` arrives.

    Status never moves backwards (PENDING < RUNNING < SUCCESS = FAILED). A report that
    would move it backwards only fills in fields still empty; any other report updates
    the fields it carries. Derived fields are recomputed from the merged values.
    """
    check_report(report)
    run_id = report["run_id"]
    new_status: str | None = report.get("status")
    if existing is None:
        # A new run: the report is all there is (the common case of bulk ingest).
        base: dict[str, Any] = dict(report)
        base["custom_stats"] = report.get("custom_stats") or {}
        base["labels"] = report.get("labels") or {}
        old_status: str | None = None
    else:
        base = {name: getattr(existing, name) for name in PLAIN_FIELDS}
        for name in existing.derived:
            base[name] = None
        old_status = existing.status
        forward = new_status is None or RANK[new_status] >= RANK[old_status]
        for name in PLAIN_FIELDS:
            value = report.get(name)
            if value is not None and (forward or base[name] is None):
                base[name] = value
        for name in ("custom_stats", "labels"):
            old, incoming = getattr(existing, name), report.get(name)
            if incoming:
                base[name] = {**old, **incoming} if forward else {**incoming, **old}
            else:
                base[name] = old

    derived = _derive(base)
    if new_status is None:
        if existing is not None and "status" not in existing.derived:
            # A report without a status leaves a status someone stated as it is.
            new_status = existing.status
        else:
            new_status = derive_status(base, duration_provided="duration_s" not in derived)
            derived.add("status")
    if old_status is not None and RANK[new_status] < RANK[old_status]:
        new_status = old_status

    if base.get("pipeline") is None:
        raise RunProblem("pipeline", f"is required for a new run (run_id {run_id!r} is not known)")
    batch_id = base.get("batch_id")
    return RunRecord(
        run_id=run_id,
        project=base.get("project") or DEFAULT_PROJECT,
        pipeline=base["pipeline"],
        batch_id=str(batch_id) if batch_id is not None else run_id,
        env=base.get("env") or DEFAULT_ENV,
        status=new_status,
        created_at=existing.created_at if existing is not None else now,
        updated_at=now,
        started_at=base.get("started_at"),
        ended_at=base.get("ended_at"),
        duration_s=base.get("duration_s"),
        rows_read=base.get("rows_read"),
        rows_written=base.get("rows_written"),
        rows_invalid=base.get("rows_invalid"),
        rows_inserted=base.get("rows_inserted"),
        rows_updated=base.get("rows_updated"),
        dq_errors=base.get("dq_errors"),
        read_throughput=base.get("read_throughput"),
        write_throughput=base.get("write_throughput"),
        custom_stats=base["custom_stats"],
        labels=base["labels"],
        error_message=base.get("error_message"),
        derived=frozenset(derived),
    )


def to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)
