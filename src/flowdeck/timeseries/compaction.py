"""Retention of metrics: a background task that, every so often, drops raw points and rollup
buckets older than their level's retention. The clock is a parameter; the deletes run on
the writer thread like every other write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta

from flowdeck.errors import FlowdeckError
from flowdeck.ingest.writer import Writer
from flowdeck.store.metrics_sql import LEVELS, MetricsSql

log = logging.getLogger("flowdeck.metrics")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cutoffs(now: datetime, retention_days: tuple[int, ...]) -> tuple[int, Mapping[int, int]]:
    """(raw points older than this many microseconds since 1970 go, {level: buckets ending
    at or before this many seconds go}); ``retention_days`` is (raw, 1m, 5m, 1h, 1d)."""
    raw_days, *level_days = retention_days
    raw = (now - timedelta(days=raw_days) - _EPOCH) // timedelta(microseconds=1)
    levels = {
        width: (now - timedelta(days=days) - _EPOCH) // timedelta(seconds=1)
        for width, days in zip(LEVELS, level_days, strict=True)
    }
    return raw, levels


class Compactor:
    def __init__(
        self,
        store: MetricsSql,
        writer: Writer,
        retention_days: tuple[int, ...],
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.writer = writer
        self.retention_days = retention_days
        self.clock = clock
        self.runs = 0
        self.last_run: datetime | None = None

    async def compact(self) -> None:
        """Apply retention once, as of the clock's now."""
        now = self.clock()
        raw, levels = cutoffs(now, self.retention_days)
        await self.writer.run_call(lambda: self.store.compact_metrics(raw, levels))
        self.runs += 1
        self.last_run = now

    async def loop(self, every: float) -> None:
        while True:
            try:
                await self.compact()
            except FlowdeckError as exc:
                log.warning("metric compaction failed: %s", exc)
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def compacting(
    store: MetricsSql,
    writer: Writer,
    retention_days: tuple[int, ...],
    clock: Callable[[], datetime],
    every: float,
) -> AsyncIterator[Compactor]:
    """Run compaction every ``every`` seconds (the first at once) while the block runs."""
    compactor = Compactor(store, writer, retention_days, clock)
    task = asyncio.create_task(compactor.loop(every), name="flowdeck-metric-compaction")
    try:
        yield compactor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
