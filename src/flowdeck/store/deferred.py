"""Pipeline states written to their table a little after their runs.

Every run changes its pipeline's state (runs, last run, last success, consecutive failures),
and on DuckDB the UPDATE that writes states costs about a quarter of a small group commit
whatever the number of rows it changes: it scans the whole pipelines table (2 ms with 500
pipelines, 6 ms with 20,000). So where the writer is the only writer of its database
(DuckDB), a commit of runs keeps back the new states of pipelines already stored, and they
are written together, in one UPDATE, once the oldest has waited ``FLUSH_AFTER`` seconds or
the writer has had nothing to do for ``IDLE_FLUSH``. A pipeline's first state is inserted
with its first run, so every kept-back state has its row.

Nobody reads a stale state:

- the store's reads of states (``SqlStore.list_pipelines``, the alert engine's) lay the
  kept-back ones over what they read, taking them *before* the read, so that a flush in
  between leaves them with a state at least as new as the read's start;
- the writer writes them into its own transaction before any of its statements reads the
  pipelines table;
- after a crash the runs are the truth: while states are kept back, the ``writer_marks``
  row ``pipelines`` holds the time of the earliest runs whose states are (written in the
  same transaction as those runs, removed with the flush), and opening the store recounts
  the pipelines of every run written since (less ``RECOVERY_MARGIN``, for a clock set
  back). A commit in which a run leaves its pipeline (for another pipeline, env or
  project) writes every state at once: that recount finds pipelines through their runs,
  and would miss the one left behind. A clean close writes everything, which removes the
  mark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Final

from flowdeck.pipelines import PipelineKey, PipelineState

FLUSH_AFTER: Final = 0.25
IDLE_FLUSH: Final = 0.05
MARK: Final = "pipelines"
# How far before the mark a recovery looks for runs (the writer's clock may have been set
# back meanwhile; counting a pipeline again is exact, only slower).
RECOVERY_MARGIN: Final = timedelta(hours=1)


class DeferredPipelines:
    """The kept-back states: written by the writer thread, read by any."""

    def __init__(self, flush_after: float = FLUSH_AFTER, idle_flush: float = IDLE_FLUSH) -> None:
        self.flush_after = flush_after
        self.idle_flush = idle_flush
        self._states: dict[PipelineKey, PipelineState] = {}
        self._since: float | None = None  # (monotonic) when the oldest was kept back
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states

    def pending(self) -> dict[PipelineKey, PipelineState]:
        """A copy for a reader, to take before it reads the table."""
        with self._lock:
            return dict(self._states)

    def states(self) -> list[PipelineState]:
        """The kept-back states (writer thread)."""
        return list(self._states.values())

    def due(self) -> bool:
        """Whether the oldest has waited long enough to be written with the next commit."""
        since = self._since
        return since is not None and time.monotonic() - since >= self.flush_after

    def flush_in(self) -> float | None:
        """How long an idle writer may wait before writing them (None: nothing kept)."""
        since = self._since
        if since is None:
            return None
        return max(0.0, min(self.idle_flush, since + self.flush_after - time.monotonic()))

    def committed(
        self, kept: Iterable[PipelineState], *, flushed: bool, removed: Iterable[PipelineKey] = ()
    ) -> None:
        """After a commit (before its requests are answered): it wrote every kept-back state
        when ``flushed``, kept ``kept`` back and removed ``removed``."""
        with self._lock:
            if flushed:
                self._states.clear()
                self._since = None
            for state in kept:
                self._states[state.key] = state
            for key in removed:
                self._states.pop(key, None)
            if not self._states:
                self._since = None
            elif self._since is None:
                self._since = time.monotonic()


def lay_over(
    pending: Mapping[PipelineKey, PipelineState], states: list[PipelineState]
) -> list[PipelineState]:
    """``states`` as read from the table, with the kept-back ones in their place."""
    if not pending:
        return states
    return [pending.get(s.key, s) for s in states]
