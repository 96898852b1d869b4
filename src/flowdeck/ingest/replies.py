"""Answers from the writer's thread to the event loops waiting for them, once per commit.

``asyncio.wrap_future`` hands each finished request to its loop with a thread-safe call of
its own, and chains two futures to do it: for a group commit of 32 single-run requests that
is 32 wake-ups of the loop and most of the loop's cost of waiting, paid while the next
group waits. Here the writer notes each finished request and, once the commit is done,
hands all of a loop's answers over in one call (``flush``).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_Answer = tuple["asyncio.Future[Any]", "Future[Any]"]


class Replies:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}

    def watch(self, future: Future[T]) -> asyncio.Future[T]:
        """An awaitable of ``future`` for the running loop. Call it before the request can
        finish (before it is queued): its answer then always goes through ``flush``."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        def finished(done: Future[T]) -> None:
            with self._lock:
                self._pending.setdefault(loop, []).append((waiter, done))

        def given_up(w: asyncio.Future[T]) -> None:
            if w.cancelled():
                future.cancel()  # not written if the writer has not taken it yet

        future.add_done_callback(finished)
        waiter.add_done_callback(given_up)
        return waiter

    def flush(self) -> None:
        """Hand every finished request to its loop: one call per loop."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for loop, answers in pending.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[_Answer]) -> None:
    for waiter, done in answers:
        if waiter.done():
            continue
        if done.cancelled():
            waiter.cancel()
        elif (exc := done.exception()) is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(done.result())
