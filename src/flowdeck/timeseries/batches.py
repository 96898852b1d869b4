"""Batch-derived series: numbers of the stored batch aggregates, queryable like metric points.

Each batch is one point at its ``sort_at`` (its first start, else its first report) with
the tags ``env`` and ``health``. ``batches.green`` is 1 for a green batch and 0 for a red
one; a batch still running without a failure has no value yet (it may still turn green),
so the ``avg`` of ``batches.green`` is the share of green batches among those whose health
is settled: the batch health compliance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from flowdeck.batches import health
from flowdeck.models import Health
from flowdeck.trends import batch_duration_s

if TYPE_CHECKING:
    from flowdeck.store.base import BatchRow


def _green(row: BatchRow) -> float | None:
    if row.failed:
        return 0.0
    if row.open:
        return None
    return 1.0 if health(row.total, row.succeeded, row.failed) is Health.GREEN else 0.0


BATCH_METRICS: Final[Mapping[str, Callable[[BatchRow], float | None]]] = {
    "batches.count": lambda row: 1.0,
    "batches.green": _green,
    "batches.duration_s": batch_duration_s,
    "batches.processes": lambda row: float(row.total),
    "batches.failed": lambda row: float(row.failed),
}
BATCH_TAGS: Final = ("env", "health")
# More batches than this in one query's range are left out (the oldest).
MAX_BATCHES: Final = 100_000


def batch_tags(row: BatchRow) -> dict[str, str]:
    return {"env": row.env, "health": health(row.total, row.succeeded, row.failed).value}
