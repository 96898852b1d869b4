"""What the writer last wrote of each batch and pipeline, so that a small commit need not read
them back. Only a store whose writer is the one writer of its database may keep it (DuckDB:
one process owns the file); PostgreSQL replicas share the database and read instead."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from flowdeck.pipelines import PipelineKey, PipelineState, Streak
from flowdeck.runs import RunRecord
from flowdeck.store.base import BatchKey, BatchRow

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A mapping that keeps the ``size`` most recently stored entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class PipelineUpdate:
    """What one commit did to the pipelines' states."""

    states: list[PipelineState]
    removed: list[PipelineKey]  # left without runs
    # The failed runs after each one's last success, where known (None: not known).
    streaks: dict[PipelineKey, Streak | None]
    # States not written to the table yet (store/deferred.py), and whether the commit wrote
    # those kept back before it.
    kept: list[PipelineState] = field(default_factory=list)
    flushed: bool = False


# A streak longer than this is not kept: the stored runs are counted instead.
LONGEST_STREAK = 1000


class NewRunGuess:
    """Whether a commit may take the run ids it does not remember for new ones and skip
    looking them up (a point lookup per id is the costliest statement of a small commit).
    A wrong guess costs the commit a second try, so guessing pauses while it goes wrong
    (a client re-posting old runs, updates to runs written long ago)."""

    # Share of wrong guesses, decayed over about the last 20 guesses, that pauses guessing…
    WORST = 0.1
    # …for this many commits.
    PAUSE = 200

    def __init__(self) -> None:
        self.wrong = 0.0
        self.paused = 0

    def take_turn(self) -> bool:
        """Whether this commit may guess; a paused guess counts this commit off its pause."""
        if self.paused:
            self.paused -= 1
            return False
        return True

    def outcome(self, right: bool) -> None:
        self.wrong = self.wrong * 0.95 + (0.0 if right else 0.05)
        if self.wrong > self.WORST:
            self.paused, self.wrong = self.PAUSE, 0.0


class WriteCache:
    def __init__(self, batches: int = 4096, pipelines: int = 65536, runs: int = 8192) -> None:
        self.batches: Recent[BatchKey, BatchRow] = Recent(batches)
        self.pipelines: Recent[PipelineKey, PipelineState] = Recent(pipelines)
        self.streaks: Recent[PipelineKey, Streak] = Recent(pipelines)
        # The runs the writer last wrote, as stored.
        self.runs: Recent[str, RunRecord] = Recent(runs)
        self.guess = NewRunGuess()

    def remember(
        self, pipelines: PipelineUpdate, batches: Iterable[BatchRow], touched: Iterable[BatchKey]
    ) -> None:
        """After a commit: its pipeline states and batch rows. Removed pipelines and the
        ``touched`` batch keys (those a run left: removed when no row came back) go first."""
        for pkey in pipelines.removed:
            self.pipelines.drop(pkey)
            self.streaks.drop(pkey)
        for bkey in touched:
            self.batches.drop(bkey)
        for state in pipelines.states:
            self.pipelines.put(state.key, state)
            streak = pipelines.streaks.get(state.key)
            if streak is None and state.consecutive_failures == 0:
                streak = {}
            if streak is None or len(streak) > LONGEST_STREAK:
                self.streaks.drop(state.key)
            else:
                self.streaks.put(state.key, streak)
        for row in batches:
            self.batches.put(row.key, row)

    def remember_runs(self, *records: Iterable[RunRecord]) -> None:
        """After a commit: runs as stored (later ones win)."""
        for group in records:
            for record in group:
                self.runs.put(record.run_id, record)

    def clear(self) -> None:
        self.batches.clear()
        self.pipelines.clear()
        self.streaks.clear()
        self.runs.clear()
