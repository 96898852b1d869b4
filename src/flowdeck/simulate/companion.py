"""``flowdeck demo``: seeds the store with the estate's history when the server starts, then
keeps a live prod batch moving for as long as the server runs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import Final

from flowdeck.api.app import Companion
from flowdeck.api.services import Services
from flowdeck.errors import StoreUnavailable
from flowdeck.ingest.writer import Writer
from flowdeck.simulate.estate import LiveBatch, Report, build_estate, history

log = logging.getLogger("flowdeck.demo")

CHUNK_RUNS: Final = 5_000
LIVE_INTERVAL_S: Final = 2.0
STOP_TIMEOUT_S: Final = 5.0


def reset_demo_database(path: Path) -> None:
    """Delete the demo's DuckDB file and its write-ahead log: every demo starts afresh."""
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            file.unlink()
        except FileNotFoundError:
            continue
        log.info("demo: removed %s (the demo starts afresh)", file)


def demo_companion(seed: int, days: int, speed: float) -> Companion:
    """What runs beside the demo server: history first, then the live batch."""

    def companion(svc: Services) -> AbstractAsyncContextManager[None]:
        return _demo(svc, seed, days, speed)

    return companion


@asynccontextmanager
async def _demo(svc: Services, seed: int, days: int, speed: float) -> AsyncIterator[None]:
    estate = build_estate(seed)
    await seed_history(svc.writer, history(svc.clock(), seed, days, estate), days)
    live = LiveBatch(seed, svc.clock(), speed, estate)
    log.info("demo: live prod batches play at %g× speed, starting with %s", speed, live.batch_id)
    stop = asyncio.Event()
    task = asyncio.create_task(_play(svc, live, stop), name="flowdeck-demo-live")
    try:
        yield
    finally:
        stop.set()
        try:
            # Let the loop finish the write in hand; wait_for cancels it if that hangs.
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("demo: live batch did not stop within %g s; cancelled", STOP_TIMEOUT_S)


async def seed_history(writer: Writer, batches: Iterable[list[Report]], days: int) -> int:
    """Write whole batches in requests of at most CHUNK_RUNS runs; returns the runs written."""
    started = time.perf_counter()
    runs = batch_count = 0
    chunk: list[Report] = []
    for batch in batches:
        if chunk and len(chunk) + len(batch) > CHUNK_RUNS:
            runs += len(await writer.write(chunk))
            chunk = []
        chunk.extend(batch)  # whole batches only: a batch is never seen half-written
        batch_count += 1
    if chunk:
        runs += len(await writer.write(chunk))
    log.info(
        "demo: seeded %d runs in %d batches (%d days of history) in %.2f s",
        runs,
        batch_count,
        days,
        time.perf_counter() - started,
    )
    return runs


async def _play(svc: Services, live: LiveBatch, stop: asyncio.Event) -> None:
    """Every LIVE_INTERVAL_S, report what moved, until ``stop`` is set. Failures are logged,
    never raised: the demo server must keep serving."""
    pending: list[Report] = []
    batch_id = live.batch_id
    failing = False
    while not stop.is_set():
        try:
            if not pending:
                pending = live.step(svc.clock())
                if live.batch_id != batch_id:
                    batch_id = live.batch_id
                    log.info("demo: live batch %s started", batch_id)
            if pending:
                # Shielded: a write in hand completes even when the server is stopping.
                await asyncio.shield(svc.writer.write(pending))
            pending = []
            if failing:
                log.info("demo: live batch updates are being written again")
                failing = False
        except StoreUnavailable as exc:
            # Keep the unwritten reports and retry them before moving on, so no update is lost
            # and nothing piles up while the store is away.
            if not failing:
                log.warning("demo: live batch update not written, will retry: %s", exc)
                failing = True
        except Exception:
            log.exception("demo: live batch update failed; skipping it")
            pending = []
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LIVE_INTERVAL_S)
