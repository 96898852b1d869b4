"""The in-process event bus: the writer publishes what each commit changed; live clients
(Server-Sent Events) subscribe. Publishing is thread-safe; subscribers live on the event loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Change:
    """What one commit changed: the runs upserted and the refreshed batch aggregates."""

    seq: int
    runs: tuple[dict[str, Any], ...]  # run_id, project, pipeline, batch_id, env, status
    batches: tuple[dict[str, Any], ...]  # the batch aggregates as the API shows them


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Change] = field(default_factory=lambda: asyncio.Queue(maxsize=1024))
    overflowed: bool = False


class EventBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        self._seq = itertools.count(1)
        self._seq_lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def start(self) -> None:
        """Begin whatever the bus needs in the background (nothing, in-process)."""

    def stop(self) -> None: ...

    def publish(
        self, runs: tuple[dict[str, Any], ...], batches: tuple[dict[str, Any], ...]
    ) -> Change | None:
        """Called from any thread once a commit is durable. In-process, the change goes
        straight to the subscribers; a bus spanning replicas overrides this."""
        return self.deliver(runs, batches)

    def deliver(
        self, runs: tuple[dict[str, Any], ...], batches: tuple[dict[str, Any], ...]
    ) -> Change:
        """Hand a change to this process's subscribers (thread-safe)."""
        with self._seq_lock:
            change = Change(next(self._seq), runs, batches)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out, change)
        return change

    def resync_all(self) -> None:
        """Tell every subscriber to reload: changes may have been missed."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._mark_all)

    def _mark_all(self) -> None:
        for sub in self._subs:
            sub.overflowed = True
            if sub.queue.empty():
                # Wake the client's loop so it sends the resync now.
                sub.queue.put_nowait(Change(0, (), ()))

    def _fan_out(self, change: Change) -> None:
        for sub in self._subs:
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                # A client too slow to keep up is told to reload instead of being sent
                # an unbounded backlog.
                sub.overflowed = True

    @contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        sub = Subscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
