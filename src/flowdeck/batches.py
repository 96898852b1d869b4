"""Batch health as DESIGN.md defines it."""

from __future__ import annotations

from typing import Final

from flowdeck.models import Health

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
