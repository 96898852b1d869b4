"""The server's settled heap: frozen and collected less often while it runs, as before after."""

from __future__ import annotations

import asyncio
import gc

from flowdeck.heap import YOUNG_THRESHOLD, settled_heap


def test_the_heap_settles_while_the_server_runs_and_is_restored_after() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()

    async def inside() -> tuple[tuple[int, int, int], int]:
        async with settled_heap():
            return gc.get_threshold(), gc.get_freeze_count()

    threshold, frozen = asyncio.run(inside())
    assert threshold == (YOUNG_THRESHOLD, before[1], before[2])
    assert frozen > frozen_before  # what existed at start is out of the collector's sight
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
