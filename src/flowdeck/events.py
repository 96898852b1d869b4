"""The in-process event bus: the writer publishes what each commit changed; live clients
(Server-Sent Events) subscribe. Publishing is thread-safe; subscribers live on the event loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import pyarrow as pa

    from flowdeck.pipelines import PipelineKey

# What the change stream tells of each run written.
RUN_EVENT_FIELDS = ("run_id", "project", "pipeline", "batch_id", "env", "status")


def table_run_events(table: pa.Table, run_ids: list[str]) -> tuple[dict[str, Any], ...]:
    """The run events of a table of runs (its ``run_id`` column read already): a dict
    display a run is about half the cost of dict(zip(...)). It spells RUN_EVENT_FIELDS
    out; tests/test_columnar.py holds the two alike."""
    project, pipeline, batch_id, env, status = (
        table.column(name).to_pylist() for name in RUN_EVENT_FIELDS[1:]
    )
    return tuple(
        {"run_id": i, "project": p, "pipeline": q, "batch_id": b, "env": e, "status": s}
        for i, p, q, b, e, s in zip(run_ids, project, pipeline, batch_id, env, status, strict=True)
    )


class TableRunEvents(Sequence[dict[str, Any]]):
    """The run events of a table of new runs, built when first read. A bulk append is
    announced to subscribers that mostly need only its pipelines (the alert engine) or
    nothing at all (no live client), and building 10,000 dicts cost the request's thread
    about 5 ms."""

    __slots__ = ("_built", "_run_ids", "_table")

    def __init__(self, table: pa.Table, run_ids: list[str]) -> None:
        self._table = table.select(list(RUN_EVENT_FIELDS[1:]))
        self._run_ids = run_ids
        self._built: tuple[dict[str, Any], ...] | None = None

    def __len__(self) -> int:
        return len(self._run_ids)

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[dict[str, Any], ...]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | tuple[dict[str, Any], ...]:
        return self.events()[i]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events())

    def events(self) -> tuple[dict[str, Any], ...]:
        """The events as dicts (built once; two threads may both build them, alike)."""
        built = self._built
        if built is None:
            built = self._built = table_run_events(self._table, self._run_ids)
        return built

    def pipeline_keys(self) -> list[PipelineKey]:
        """The pipelines of these runs, in the order they first appear, without the dicts."""
        columns = (self._table.column(n).to_pylist() for n in ("project", "pipeline", "env"))
        return list(dict.fromkeys(zip(*columns, strict=True)))


def pipeline_keys(runs: Sequence[dict[str, Any]]) -> Iterable[PipelineKey]:
    """The (project, pipeline, env) of each run event, repeats included where cheaper."""
    if isinstance(runs, TableRunEvents):
        return runs.pipeline_keys()
    return ((r["project"], r["pipeline"], r["env"]) for r in runs)


@dataclass(frozen=True, slots=True)
class Change:
    """What one commit changed: the runs upserted and the refreshed batch aggregates, or
    (from alerting) what happened to alerts and notifications."""

    seq: int
    runs: Sequence[dict[str, Any]]  # run_id, project, pipeline, batch_id, env, status
    batches: tuple[dict[str, Any], ...]  # the batch aggregates as the API shows them
    alerts: tuple[dict[str, Any], ...] = ()  # {"what": "alert" | "notification" | …, …}
    metrics: tuple[str, ...] = ()  # names of metrics that received points


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[Change] = field(default_factory=lambda: asyncio.Queue(maxsize=1024))
    overflowed: bool = False
    internal: bool = False  # flowdeck's own (the alert engine), not a client


# Recent changes kept so that a client reconnecting with its last event id misses nothing.
REPLAY_CHANGES = 10_000
REPLAY_RUNS = 200_000


class EventBus:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[Subscription] = set()
        # Event ids count on from the start time in microseconds, so an id from an earlier
        # process (or another replica) never names a change of this one.
        first = time.time_ns() // 1000
        self._seq = itertools.count(first)
        self._seq_lock = threading.Lock()
        self._recent: deque[Change] = deque()
        self._recent_runs = 0
        self._last_seq = first - 1  # the last change handed out on the loop
        self._floor = 0  # ids up to this one cannot be resumed (changes went missing)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def subscribers(self) -> int:
        """Live clients (flowdeck's own subscriptions are not counted)."""
        return sum(1 for sub in self._subs if not sub.internal)

    def start(self) -> None:
        """Begin whatever the bus needs in the background (nothing, in-process)."""

    def stop(self) -> None: ...

    def publish(
        self, runs: Sequence[dict[str, Any]], batches: tuple[dict[str, Any], ...]
    ) -> Change | None:
        """Called from any thread once a commit is durable. In-process, the change goes
        straight to the subscribers; a bus spanning replicas overrides this."""
        return self.deliver(runs, batches)

    def publish_alerts(self, alerts: tuple[dict[str, Any], ...]) -> None:
        """Alerting's news (an alert moved, a notification arrived, one was read) for the
        live clients of every replica; called from any thread."""
        self.deliver((), (), alerts)

    def publish_metrics(self, names: tuple[str, ...]) -> None:
        """The metrics that just received points, for live dashboards; any thread."""
        self.deliver((), (), (), names)

    def deliver(
        self,
        runs: Sequence[dict[str, Any]],
        batches: tuple[dict[str, Any], ...],
        alerts: tuple[dict[str, Any], ...] = (),
        metrics: tuple[str, ...] = (),
    ) -> Change:
        """Hand a change to this process's subscribers (thread-safe)."""
        loop = self._loop
        with self._seq_lock:
            change = Change(next(self._seq), runs, batches, alerts, metrics)
            # Scheduled under the lock, so changes reach the loop in the order of their ids.
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._fan_out, change)
        return change

    @property
    def last_event_id(self) -> int:
        """The id of the last change handed to subscribers (call on the loop)."""
        return self._last_seq

    def replay(self, after: int) -> list[Change] | None:
        """The changes after event id ``after``, or None when they cannot all be given (an
        id of another process, older than what is kept, or from before changes were
        missed). Call on the loop, right after subscribing: nothing can come between."""
        if after <= self._floor or after > self._last_seq:
            return None
        if after == self._last_seq:
            return []
        if not self._recent or self._recent[0].seq > after + 1:
            return None
        return [c for c in self._recent if c.seq > after]

    def resync_all(self) -> None:
        """Tell every subscriber to reload: changes may have been missed."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._mark_all)

    def _mark_all(self) -> None:
        # Changes went missing: no id up to here can be resumed without a gap.
        self._floor = self._last_seq
        self._recent.clear()
        self._recent_runs = 0
        for sub in self._subs:
            sub.overflowed = True
            if sub.queue.empty():
                # Wake the client's loop so it sends the resync now.
                sub.queue.put_nowait(Change(0, (), ()))

    def _remember(self, change: Change) -> None:
        self._last_seq = change.seq
        self._recent.append(change)
        self._recent_runs += len(change.runs)
        while len(self._recent) > REPLAY_CHANGES or self._recent_runs > REPLAY_RUNS:
            self._recent_runs -= len(self._recent.popleft().runs)

    def _fan_out(self, change: Change) -> None:
        self._remember(change)
        for sub in self._subs:
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                # A client too slow to keep up is told to reload instead of being sent
                # an unbounded backlog.
                sub.overflowed = True

    @contextmanager
    def subscribe(self, *, internal: bool = False) -> Iterator[Subscription]:
        sub = Subscription(internal=internal)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)
