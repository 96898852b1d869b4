"""Derivation and merge rules of DESIGN.md, without a database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowdeck.batches import health, health_reason
from flowdeck.models import Health
from flowdeck.runs import RunProblem, RunRecord, merge
from tests.conftest import T0

NOW = T0 + timedelta(days=1)


def legacy(**fields: Any) -> dict[str, Any]:
    """A pipeline_stats row as a report: no status of its own."""
    return {"run_id": "r", "pipeline": "p", "batch_id": "1", **fields}


def first(**fields: Any) -> RunRecord:
    return merge(None, legacy(**fields), NOW)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "PENDING"),
        ({"started_at": T0}, "RUNNING"),
        ({"started_at": T0, "ended_at": T0 + timedelta(minutes=1)}, "FAILED"),  # no duration
        ({"started_at": T0, "ended_at": T0, "duration_s": 0.0}, "SUCCESS"),
        ({"started_at": T0, "ended_at": T0, "duration_s": 5.0, "rows_invalid": 1}, "FAILED"),
        ({"started_at": T0, "ended_at": T0, "duration_s": 5.0, "rows_invalid": 0}, "SUCCESS"),
        ({"status": "SUCCESS"}, "SUCCESS"),  # an explicit status wins
        ({"status": "FAILED", "started_at": T0, "ended_at": T0, "duration_s": 1.0}, "FAILED"),
    ],
)
def test_status_derivation(fields: dict[str, Any], status: str) -> None:
    assert first(**fields).status == status


def test_derived_fields() -> None:
    rec = first(
        status="SUCCESS",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=200),
        rows_read=1000,
        rows_written=400,
        custom_stats={"scd2_new": 3, "scd2_changed": "4", "dq_failed_rows": 9},
    )
    assert rec.duration_s == 200
    assert rec.read_throughput == 5.0 and rec.write_throughput == 2.0
    assert (rec.rows_inserted, rec.rows_updated) == (3, 4)
    assert rec.dq_errors == 9  # no rows_invalid: custom_stats dq_failed_rows
    assert rec.dq_error_rate == pytest.approx(0.009)


def test_explicit_values_win_over_derivation() -> None:
    rec = first(
        started_at=T0,
        ended_at=T0 + timedelta(seconds=200),
        duration_s=150.0,
        rows_read=300,
        rows_invalid=2,
        dq_errors=5,
        rows_inserted=1,
        custom_stats={"scd2_new": 3},
    )
    assert (rec.duration_s, rec.read_throughput, rec.dq_errors, rec.rows_inserted) == (
        150.0,
        2.0,
        5,
        1,
    )
    assert "duration_s" not in rec.derived


def test_dq_errors_prefers_rows_invalid_then_defaults_to_zero() -> None:
    assert first(rows_invalid=4, custom_stats={"dq_failed_rows": 9}).dq_errors == 4
    assert first().dq_errors == 0


@pytest.mark.parametrize(
    ("old", "new", "result"),
    [
        ("PENDING", "RUNNING", "RUNNING"),
        ("RUNNING", "PENDING", "RUNNING"),
        ("SUCCESS", "RUNNING", "SUCCESS"),
        ("FAILED", "PENDING", "FAILED"),
        ("RUNNING", "FAILED", "FAILED"),
        ("FAILED", "SUCCESS", "SUCCESS"),  # same rank: the newer report wins (a rerun)
    ],
)
def test_status_order(old: str, new: str, result: str) -> None:
    rec = merge(first(status=old), {"run_id": "r", "status": new}, NOW)
    assert rec.status == result


def test_a_backwards_report_only_fills_empty_fields() -> None:
    done = first(status="SUCCESS", rows_read=10, labels={"a": "1"})
    late = merge(
        done,
        {
            "run_id": "r",
            "status": "RUNNING",
            "rows_read": 3,
            "rows_written": 2,
            "labels": {"a": "2", "b": "2"},
        },
        NOW,
    )
    assert (late.rows_read, late.rows_written) == (10, 2)
    assert late.labels == {"a": "1", "b": "2"}


def test_missing_fields_never_erase() -> None:
    rec = merge(first(status="RUNNING", env="prod", rows_read=5), {"run_id": "r"}, NOW)
    assert (rec.env, rec.rows_read, rec.pipeline) == ("prod", 5, "p")


def test_defaults_for_a_new_run() -> None:
    rec = merge(None, {"run_id": "x", "pipeline": "p"}, NOW)
    assert (rec.project, rec.env, rec.batch_id, rec.status) == (
        "default",
        "default",
        "x",
        "PENDING",
    )
    assert rec.created_at == rec.updated_at == NOW


def test_created_at_is_kept() -> None:
    rec = merge(first(), {"run_id": "r", "status": "RUNNING"}, NOW + timedelta(hours=1))
    assert rec.created_at == NOW and rec.updated_at == NOW + timedelta(hours=1)


def test_a_new_run_needs_a_pipeline() -> None:
    with pytest.raises(RunProblem, match="is required for a new run") as info:
        merge(None, {"run_id": "x"}, NOW)
    assert info.value.field == "pipeline"


def test_end_before_start_is_refused() -> None:
    with pytest.raises(RunProblem, match="must not be before started_at"):
        first(started_at=T0, ended_at=T0 - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("total", "succeeded", "failed", "colour"),
    [
        (10, 10, 0, Health.GREEN),
        (10, 9, 0, Health.YELLOW),  # one still running
        (10, 8, 0, Health.RED),  # below 90 %
        (100, 99, 1, Health.RED),  # any failure
        (3, 0, 0, Health.RED),  # nothing finished yet
    ],
)
def test_batch_health(total: int, succeeded: int, failed: int, colour: Health) -> None:
    assert health(total, succeeded, failed) is colour


@pytest.mark.parametrize(
    ("total", "succeeded", "failed", "reason"),
    [
        (10, 10, 0, "every process succeeded"),
        (10, 9, 0, "no failures so far, 1 still running or pending"),
        (10, 8, 0, "8 of 10 succeeded, under 90 %, 2 still running or pending"),
        (100, 99, 1, "1 process failed"),
        (2_000, 1_000, 2, "2 processes failed, 998 still running or pending"),
        (5, 4, 0, "4 of 5 succeeded, under 90 %, 1 still running or pending"),
        (0, 0, 0, "no processes"),
    ],
)
def test_batch_health_reason(total: int, succeeded: int, failed: int, reason: str) -> None:
    colour = health(total, succeeded, failed)
    assert health_reason(colour, total, succeeded, failed, total - succeeded - failed) == reason


def test_a_report_without_status_keeps_a_stated_status() -> None:
    stated = first(status="SUCCESS", started_at=T0, ended_at=T0 + timedelta(minutes=1))
    assert "status" not in stated.derived
    later = merge(stated, {"run_id": "r", "env": "dev"}, NOW)  # no duration given: would be FAILED
    assert later.status == "SUCCESS"


def test_a_derived_status_is_derived_again() -> None:
    started = first(started_at=T0)
    assert (started.status, "status" in started.derived) == ("RUNNING", True)
    done = merge(
        started, {"run_id": "r", "ended_at": T0 + timedelta(minutes=1), "duration_s": 60.0}, NOW
    )
    assert done.status == "SUCCESS"
