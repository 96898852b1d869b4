"""Keeping the percentile cells fresh (``store/metric_cells.py``): a background task that,
every so often, recomputes the cells of every stale bucket, one metric and level at a time
and a few thousand series-buckets per writer transaction, so that writes of runs and points
interleave with it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Final

from flowdeck.errors import FlowdeckError
from flowdeck.ingest.writer import Writer
from flowdeck.store.metric_cells import CELL_BUDGET
from flowdeck.store.metrics_sql import MetricsSql

log = logging.getLogger("flowdeck.metrics")
# How long one refresh may hold the writer thread (runs and points wait meanwhile), and the
# bounds of the series × buckets it may take on.
TARGET_SECONDS: Final = 0.2
MIN_BUDGET: Final = 100
MAX_BUDGET: Final = 200_000


class CellKeeper:
    def __init__(self, store: MetricsSql, writer: Writer) -> None:
        self.store = store
        self.writer = writer
        self.buckets_done = 0  # since start, for /metrics
        self.stale_metrics = 0  # metric-levels with stale buckets at the last look
        self.passes = 0  # refreshes that went through everything stale at their start
        self.budget = CELL_BUDGET  # series × buckets per writer transaction

    async def refresh(self) -> int:
        """Recompute every cell that is stale now; returns the number of buckets done."""
        stale = await asyncio.to_thread(self.store.stale_metrics)
        self.stale_metrics = len(stale)
        done = 0
        for item in stale:
            while True:
                t0 = time.perf_counter()
                n = await self.writer.run_call(
                    functools.partial(self.store.refresh_cells, item, self.budget)
                )
                if not n:
                    break
                done += n
                self.buckets_done += n
                self._adapt(time.perf_counter() - t0)
            self.stale_metrics -= 1
        self.passes += 1
        return done

    def _adapt(self, took: float) -> None:
        """Scale the budget so that a transaction takes about TARGET_SECONDS (at most four
        times more or less than the last one)."""
        scaled = self.budget * TARGET_SECONDS / max(took, 1e-3)
        bounded = min(max(scaled, self.budget / 4), self.budget * 4)
        self.budget = int(min(max(bounded, MIN_BUDGET), MAX_BUDGET))

    async def loop(self, every: float) -> None:
        while True:
            try:
                await self.refresh()
            except FlowdeckError as exc:
                log.warning("refreshing metric percentiles failed: %s", exc)
            await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def keeping_cells(
    store: MetricsSql, writer: Writer, every: float
) -> AsyncIterator[CellKeeper]:
    """Refresh the cells every ``every`` seconds (the first at once) while the block runs."""
    keeper = CellKeeper(store, writer)
    task = asyncio.create_task(keeper.loop(every), name="flowdeck-metric-cells")
    try:
        yield keeper
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
