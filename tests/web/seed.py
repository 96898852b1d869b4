"""A small estate for the dashboard tests, reported through the public API: batches in
three envs over 12 days, a large open prod batch (the newest), failures with error
messages, DQ warnings and custom stats. Times are relative to now: the dashboard's windows
(24h, 7d, 30d) are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2

LIVE_BATCH = "20991231"  # the newest batch: 120 processes, still running
PIPELINES = [f"load_{i:03d}" for i in range(120)]


def iso(t: datetime) -> str:
    return t.isoformat()


def process(
    batch_id: str,
    pipeline: str,
    env: str,
    start: datetime,
    *,
    status: str = "SUCCESS",
    seconds: float = 600,
    rows_read: int | None = 10_000,
    dq_errors: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    run: dict[str, Any] = {
        "run_id": f"{batch_id}:{pipeline}",
        "pipeline": pipeline,
        "batch_id": batch_id,
        "env": env,
        "status": status,
        "started_at": None if status == "PENDING" else iso(start),
        "rows_read": rows_read,
        "custom_stats": {"scd2_new": 40, "scd2_changed": 25, "sku_count": 48_211},
        "labels": {"team": "core"},
    }
    if status in ("SUCCESS", "FAILED"):
        run["ended_at"] = iso(start + timedelta(seconds=seconds))
        run["rows_written"] = (rows_read or 0) - dq_errors
        run["rows_invalid"] = dq_errors
    if status == "FAILED":
        run["error_message"] = f"DataContractViolation: column 'ean' has {dq_errors} nulls"
    run.update(extra)
    return {k: v for k, v in run.items() if v is not None}


def live_batch(now: datetime) -> list[dict[str, Any]]:
    start = now - timedelta(hours=1)
    runs = []
    for i, name in enumerate(PIPELINES):
        status = (
            "FAILED"
            if i % 24 == 5
            else "RUNNING"
            if i % 12 == 7
            else "PENDING"
            if i % 24 == 11
            else "SUCCESS"
        )
        dq = 500 if i % 30 == 3 else 3 if i % 7 == 0 else 0
        runs.append(
            process(
                LIVE_BATCH,
                name,
                "prod",
                start + timedelta(seconds=i * 5),
                status=status,
                seconds=60 + (i * 37) % 3000,
                rows_read=10_000 + i * 1_000,
                dq_errors=dq,
            )
        )
    return runs


def history(now: datetime) -> list[dict[str, Any]]:
    """Daily prod batches over 8 days (40 processes), a test batch and an old dev batch."""
    runs: list[dict[str, Any]] = []
    for day in range(1, 9):
        start = (now - timedelta(days=day)).replace(hour=1, minute=0, second=0, microsecond=0)
        batch = f"2099{day:04d}"
        for i, name in enumerate(PIPELINES[:40]):
            failed = (day + i) % 17 == 0
            runs.append(
                process(
                    batch,
                    name,
                    "prod",
                    start + timedelta(seconds=i * 30),
                    status="FAILED" if failed else "SUCCESS",
                    seconds=300 + day * 20 + i,
                    rows_read=20_000 + day * 100,
                    dq_errors=400 if failed else day,
                )
            )
    test_start = now - timedelta(hours=3)
    for i, name in enumerate(PIPELINES[:20]):
        status = "RUNNING" if i == 0 else "SUCCESS"
        runs.append(process("T-100", name, "test", test_start, status=status))
    old = now - timedelta(days=12)
    for name in PIPELINES[:10]:
        runs.append(process("D-OLD", name, "dev", old))
    return runs


def post(base: str, runs: list[dict[str, Any]]) -> None:
    for i in range(0, len(runs), 5000):
        answer = httpx2.post(f"{base}/api/v1/runs", json=runs[i : i + 5000], timeout=60)
        assert answer.status_code == 200, answer.text


def seed(base: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    post(base, history(now) + live_batch(now))
    return now
