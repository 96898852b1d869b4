"""The single writer: every write goes through one thread that merges whatever requests are
waiting into one transaction (group commit) and acknowledges each request only once that
transaction is committed. A request that breaks a rule fails alone; the others still commit."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flowdeck.batches import batch_out
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput, StoreUnavailable
from flowdeck.events import EventBus
from flowdeck.runs import RunProblem, RunRecord, merge
from flowdeck.store import Store, WritePlan
from flowdeck.store.base import BatchKey

log = logging.getLogger("flowdeck.writer")

Report = dict[str, Any]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class WriteRequest:
    reports: Sequence[Report]
    # How the API names a report in error messages: "runs[3]" or "run".
    locate: Callable[[int], str]
    future: Future[list[str]] = field(default_factory=Future)


@dataclass
class WriterStats:
    commits: int = 0
    runs_written: int = 0
    requests: int = 0
    last_commit_seconds: float = 0.0


def run_event(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "project": record.project,
        "pipeline": record.pipeline,
        "batch_id": record.batch_id,
        "env": record.env,
        "status": record.status,
    }


def unchanged(before: RunRecord | None, after: RunRecord) -> bool:
    """``after`` says nothing ``before`` did not (but for the time it was said)."""
    return before is not None and replace(after, updated_at=before.updated_at) == before


_STOP = object()
# A group waits for more requests at most this share of the last commit's duration.
LINGER_SHARE = 0.5


class Writer:
    def __init__(
        self,
        store: Store,
        bus: EventBus | None = None,
        *,
        max_group_runs: int = 50_000,
        max_linger: float = 0.010,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.bus = bus
        self.max_group_runs = max_group_runs
        self.max_linger = max_linger
        self.clock = clock
        self.stats = WriterStats()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="flowdeck-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # -- submitting --------------------------------------------------------------------
    def submit(
        self, reports: Sequence[Report], locate: Callable[[int], str] = lambda i: f"runs[{i}]"
    ) -> Future[list[str]]:
        """Queue reports (each with a ``run_id``); the future gives their run_ids once
        committed, or raises InvalidInput / StoreUnavailable."""
        if self._thread is None:
            raise StoreUnavailable("the writer is not running")
        request = WriteRequest(reports, locate)
        self._queue.put(request)
        return request.future

    async def write(
        self, reports: Sequence[Report], locate: Callable[[int], str] = lambda i: f"runs[{i}]"
    ) -> list[str]:
        return await asyncio.wrap_future(self.submit(reports, locate))

    # -- the thread --------------------------------------------------------------------
    def _loop(self) -> None:
        stopping = False
        # Requests in flight at the end of the last commit: those it answered (their
        # clients are about to send again) and those that queued meanwhile.
        in_flight = 0
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            group: list[WriteRequest] = [item]
            size = len(item.reports)
            # With several clients, the ones just answered send again while the writer
            # already commits the others: two half groups. Lingering a fraction of a commit
            # for them makes one group of everybody (as PostgreSQL's commit_delay does).
            deadline = None
            if in_flight > 1:
                linger = min(self.max_linger, self.stats.last_commit_seconds * LINGER_SHARE)
                deadline = time.perf_counter() + linger
            while size < self.max_group_runs:
                try:
                    if deadline is None or len(group) >= in_flight:
                        nxt = self._queue.get_nowait()
                    else:
                        nxt = self._queue.get(timeout=max(deadline - time.perf_counter(), 0))
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                group.append(nxt)
                size += len(nxt.reports)
            # A request whose caller gave up before we got to it is not written; the others
            # can no longer be cancelled once marked running.
            group = [r for r in group if r.future.set_running_or_notify_cancel()]
            if group:
                self._commit(group)
            in_flight = len(group) + self._queue.qsize()

    def _commit(self, group: list[WriteRequest]) -> None:
        started = time.perf_counter()
        now = self.clock()
        accepted: list[WriteRequest] = []
        rejected: list[tuple[WriteRequest, InvalidInput]] = []
        planned: dict[str, RunRecord] = {}

        def plan(existing: dict[str, RunRecord]) -> WritePlan:
            accepted.clear()
            rejected.clear()
            state: dict[str, RunRecord] = {}
            for request in group:
                local: dict[str, RunRecord] = {}
                problems: list[FieldProblem] = []
                for i, report in enumerate(request.reports):
                    run_id = report["run_id"]
                    before = local.get(run_id) or state.get(run_id) or existing.get(run_id)
                    try:
                        local[run_id] = merge(before, report, now)
                    except RunProblem as exc:
                        problems.append(FieldProblem(f"{request.locate(i)}.{exc.field}", exc.msg))
                if problems:
                    rejected.append((request, InvalidInput(problems)))
                else:
                    state.update(local)
                    accepted.append(request)
            # A report that changes nothing (a re-post, a re-import) is accepted but not
            # written again: its run keeps its updated_at and no change is announced.
            state = {
                run_id: record
                for run_id, record in state.items()
                if not unchanged(existing.get(run_id), record)
            }
            keys: set[BatchKey] = {(r.project, r.batch_id) for r in state.values()}
            moved = False
            for run_id, record in state.items():
                old = existing.get(run_id)
                if old is not None and (old.project, old.batch_id) != (
                    record.project,
                    record.batch_id,
                ):
                    keys.add((old.project, old.batch_id))
                    moved = True
            planned.clear()
            planned.update(state)
            return WritePlan(list(state.values()), keys, moved)

        run_ids = list(dict.fromkeys(r["run_id"] for q in group for r in q.reports))
        try:
            batches = self.store.upsert_runs(run_ids, plan)
        except FlowdeckError as exc:
            if len(group) > 1:
                # One request must not sink the others: commit each on its own.
                for request in group:
                    self._commit([request])
                return
            log.error("write failed: %s", exc)
            if not group[0].future.done():
                group[0].future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("writer failed")
            for request in group:
                if not request.future.done():
                    request.future.set_exception(StoreUnavailable(f"write failed: {exc}"))
            return

        written: list[str] = []
        for request in accepted:
            ids = [r["run_id"] for r in request.reports]
            written.extend(ids)
            request.future.set_result(ids)
        for request, error in rejected:
            request.future.set_exception(error)
        self.stats.commits += 1
        self.stats.requests += len(accepted)
        changed = [i for i in dict.fromkeys(written) if i in planned]
        self.stats.runs_written += len(changed)
        self.stats.last_commit_seconds = time.perf_counter() - started
        if self.bus is not None and changed:
            self.bus.publish(
                tuple(run_event(planned[i]) for i in changed),
                tuple(batch_out(b) for b in batches),
            )
