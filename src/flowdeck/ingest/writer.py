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
from typing import Any, TypeVar

from flowdeck.batches import batch_out
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput, StoreUnavailable
from flowdeck.events import RUN_EVENT_FIELDS, EventBus, TableRunEvents
from flowdeck.ingest.columnar import Columnar
from flowdeck.ingest.replies import Replies
from flowdeck.runs import RunProblem, RunRecord, merge
from flowdeck.store import Store, WritePlan
from flowdeck.store.base import BatchKey
from flowdeck.store.bulk import ColumnarAppend
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries.points import PointBatch

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


@dataclass(eq=False)
class ColumnarRequest:
    """New runs as one Arrow table (ingest/columnar.py): committed in a transaction of
    their own, without becoming Python objects."""

    columns: Columnar
    future: Future[list[str]] = field(default_factory=Future)


@dataclass
class WriterStats:
    commits: int = 0
    runs_written: int = 0
    requests: int = 0
    last_commit_seconds: float = 0.0
    points_written: int = 0


def run_event(record: RunRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in RUN_EVENT_FIELDS}


def unchanged(before: RunRecord | None, after: RunRecord) -> bool:
    """``after`` says nothing ``before`` did not (but for the time it was said)."""
    return before is not None and replace(after, updated_at=before.updated_at) == before


_STOP = object()
# Queued beside the run requests: "metric jobs are waiting" (see _take).
_METRICS = object()
T = TypeVar("T")
# Upper bound on metric points merged into one commit.
MAX_GROUP_POINTS = 2_000_000


@dataclass(eq=False)
class MetricJob:
    """Work for the writer thread beside runs: points (merged into one commit with the
    points queued next to them) or one call on the store (compaction, definitions)."""

    points: PointBatch | None = None
    max_series: int = 0
    call: Callable[[], Any] | None = None
    future: Future[Any] = field(default_factory=Future)


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
        self._metric_jobs: queue.Queue[MetricJob] = queue.Queue()
        self._replies = Replies()  # the async callers' answers, handed over per commit

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
        while True:  # metric jobs queued behind the stop are not done: say so
            try:
                job = self._metric_jobs.get_nowait()
            except queue.Empty:
                break
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(StoreUnavailable("the writer stopped"))

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
        return await self._answered(WriteRequest(reports, locate))

    @property
    def takes_columns(self) -> bool:
        """Whether the store appends new runs from Arrow tables (``write_columns``)."""
        return isinstance(self.store, ColumnarAppend)

    def submit_columns(self, columns: Columnar) -> Future[list[str]]:
        """Queue a table of new runs; the future gives their run_ids once committed, or
        raises RunsExist (nothing written: send them as reports) / StoreUnavailable."""
        if self._thread is None:
            raise StoreUnavailable("the writer is not running")
        request = ColumnarRequest(columns)
        self._queue.put(request)
        return request.future

    async def write_columns(self, columns: Columnar) -> list[str]:
        return await self._answered(ColumnarRequest(columns))

    async def _answered(self, request: WriteRequest | ColumnarRequest) -> list[str]:
        """Queue ``request`` and wait for its answer, handed over with its commit's."""
        if self._thread is None:
            raise StoreUnavailable("the writer is not running")
        answer = self._replies.watch(request.future)  # before the writer can finish it
        self._queue.put(request)
        return await answer

    # -- metrics: points and other store calls on this thread ---------------------------
    def submit_points(self, batch: PointBatch, max_series: int) -> Future[int]:
        """Queue validated points; the future gives their number once committed, or raises
        InvalidInput (a metric over ``max_series`` tag combinations) / StoreUnavailable."""
        return self._submit_metric_job(MetricJob(points=batch, max_series=max_series))

    async def write_points(self, batch: PointBatch, max_series: int) -> int:
        return await asyncio.wrap_future(self.submit_points(batch, max_series))

    def submit_call(self, call: Callable[[], T]) -> Future[T]:
        """Run ``call`` (a write to the store) on the writer thread, between commits."""
        return self._submit_metric_job(MetricJob(call=call))

    async def run_call(self, call: Callable[[], T]) -> T:
        return await asyncio.wrap_future(self.submit_call(call))

    def _submit_metric_job(self, job: MetricJob) -> Future[Any]:
        if self._thread is None:
            raise StoreUnavailable("the writer is not running")
        self._metric_jobs.put(job)
        self._queue.put(_METRICS)
        return job.future

    def _take(self, block: bool = True, deadline: float | None = None) -> Any:
        """The next run request (or _STOP), doing any metric jobs queued before it. Without
        ``block`` or past ``deadline`` (a perf_counter time), queue.Empty when none waits."""
        while True:
            if not block:
                item = self._queue.get_nowait()
            elif deadline is None:
                item = self._queue.get()
            else:
                item = self._queue.get(timeout=max(deadline - time.perf_counter(), 0))
            if item is not _METRICS:
                return item
            self._run_metric_jobs()

    def _run_metric_jobs(self) -> None:
        points: list[MetricJob] = []
        size = 0
        while True:
            try:
                job = self._metric_jobs.get_nowait()
            except queue.Empty:
                break
            if not job.future.set_running_or_notify_cancel():
                continue
            if job.points is None:
                self._commit_points(points)
                points, size = [], 0
                self._run_call(job)
                continue
            if points and size + len(job.points) > MAX_GROUP_POINTS:
                self._commit_points(points)
                points, size = [], 0
            points.append(job)
            size += len(job.points)
        self._commit_points(points)

    def _run_call(self, job: MetricJob) -> None:
        assert job.call is not None
        try:
            job.future.set_result(job.call())
        except FlowdeckError as exc:
            job.future.set_exception(exc)
        except Exception as exc:
            log.exception("writer call failed")
            job.future.set_exception(StoreUnavailable(f"write failed: {exc}"))

    def _commit_points(self, jobs: list[MetricJob]) -> None:
        if not jobs:
            return
        store = self.store
        assert isinstance(store, MetricsSql)
        batches = [j.points for j in jobs if j.points is not None]
        try:
            outcome = store.add_points(batches, min(j.max_series for j in jobs), self.clock())
        except FlowdeckError as exc:
            if len(jobs) > 1:
                for job in jobs:  # one request must not sink the others
                    self._commit_points([job])
                return
            log.error("metric write failed: %s", exc)
            jobs[0].future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("metric writer failed")
            for job in jobs:
                job.future.set_exception(StoreUnavailable(f"write failed: {exc}"))
            return
        names: set[str] = set()
        for job, batch, problem in zip(jobs, batches, outcome, strict=True):
            if problem is None:
                self.stats.points_written += len(batch)
                names.update(series.name for series in batch.series)
                job.future.set_result(len(batch))
            else:
                job.future.set_exception(problem)
        if self.bus is not None and names:
            self.bus.publish_metrics(tuple(sorted(names)))

    # -- the thread --------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._run()
        finally:
            self._replies.flush()

    def _run(self) -> None:
        stopping = False
        # Requests in flight at the end of the last commit: those it answered (their
        # clients are about to send again) and those that queued meanwhile.
        in_flight = 0
        carried: ColumnarRequest | None = None
        while not stopping:
            if carried is not None:
                self._commit_columns(carried)
                self._replies.flush()
                carried = None
            item = self._next()
            if item is _STOP:
                break
            if isinstance(item, ColumnarRequest):
                self._commit_columns(item)
                self._replies.flush()
                continue
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
                    waiting = deadline is not None and len(group) < in_flight
                    nxt = self._take(block=waiting, deadline=deadline)
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                if isinstance(nxt, ColumnarRequest):
                    carried = nxt  # after this group, in a transaction of its own
                    break
                group.append(nxt)
                size += len(nxt.reports)
            # A request whose caller gave up before we got to it is not written; the others
            # can no longer be cancelled once marked running.
            group = [r for r in group if r.future.set_running_or_notify_cancel()]
            if group:
                self._commit(group)
                self._replies.flush()
            in_flight = len(group) + self._queue.qsize()
        if carried is not None:
            self._commit_columns(carried)

    def _next(self) -> Any:
        """The next request (or _STOP). While none comes, the pipeline states the store keeps
        back from their table (store/deferred.py) are written once they are due."""
        while True:
            wait = self.store.pipelines_flush_in()
            if wait is None:
                return self._take()
            try:
                return self._take(deadline=time.perf_counter() + wait)
            except queue.Empty:
                pass
            try:
                self.store.flush_pipelines()
            except Exception as exc:  # the next commit writes them (or fails as this did)
                log.error("writing pipeline states failed: %s", exc)
                return self._take()

    def _commit_columns(self, request: ColumnarRequest) -> None:
        if not request.future.set_running_or_notify_cancel():
            return
        store = self.store
        assert isinstance(store, ColumnarAppend)
        started = time.perf_counter()
        table = request.columns.table
        try:
            batches = store.append_runs(table, self.clock())
        except FlowdeckError as exc:
            request.future.set_exception(exc)
            return
        except Exception as exc:
            log.exception("writer failed")
            request.future.set_exception(StoreUnavailable(f"write failed: {exc}"))
            return
        run_ids = request.columns.run_ids
        request.future.set_result(run_ids)
        self.stats.commits += 1
        self.stats.requests += 1
        self.stats.runs_written += len(run_ids)
        self.stats.last_commit_seconds = time.perf_counter() - started
        if self.bus is not None:
            events = request.columns.events
            if events is None:
                events = TableRunEvents(table, run_ids)
            self.bus.publish(events, tuple(batch_out(b) for b in batches))

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
