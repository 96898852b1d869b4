"""Each pipeline's freshness (per project and env): its last run, its last success and the
failures since. The writer keeps these up to date from what each commit changed; where a
change could make the incremental answer wrong (a run's start time or pipeline changed, a
success became a failure, an older success arrived late), it asks for a recount from the
stored runs instead. ``recount`` is the definition; ``advance`` must always agree with it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from flowdeck.runs import RunRecord

PipelineKey = tuple[str, str, str]  # (project, pipeline, env)
Change = tuple[RunRecord | None, RunRecord]  # (before, after) of one run in a commit

SUCCESS = "SUCCESS"
FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class PipelineState:
    project: str
    pipeline: str
    env: str
    runs: int
    last_run_id: str
    last_run_at: datetime  # the last run's start (its first report when it has none yet)
    last_status: str
    last_success_run_id: str | None
    last_success_t: datetime | None  # the last successful run's start
    last_success_at: datetime | None  # …and its end
    consecutive_failures: int  # failed runs that started after the last success

    @property
    def key(self) -> PipelineKey:
        return (self.project, self.pipeline, self.env)


def key_of(run: RunRecord) -> PipelineKey:
    return (run.project, run.pipeline, run.env)


def sort_time(run: RunRecord) -> datetime:
    return run.started_at or run.created_at


def recount(key: PipelineKey, runs: Iterable[RunRecord]) -> PipelineState | None:
    """The state of a pipeline from all its runs (None when it has none)."""
    mine = [r for r in runs if key_of(r) == key]
    if not mine:
        return None
    last = max(mine, key=lambda r: (sort_time(r), r.run_id))
    successes = [r for r in mine if r.status == SUCCESS]
    best = max(successes, key=lambda r: (sort_time(r), r.run_id)) if successes else None
    since = sort_time(best) if best is not None else None
    failures = sum(
        1 for r in mine if r.status == FAILED and (since is None or sort_time(r) > since)
    )
    return PipelineState(
        *key,
        runs=len(mine),
        last_run_id=last.run_id,
        last_run_at=sort_time(last),
        last_status=last.status,
        last_success_run_id=best.run_id if best is not None else None,
        last_success_t=since,
        last_success_at=(best.ended_at or since) if best is not None else None,
        consecutive_failures=failures,
    )


class NeedsRecount(Exception):
    """Only the stored runs can tell this pipeline's state after the change."""


FailuresAfter = Callable[[PipelineKey, datetime], int]


def advance(
    key: PipelineKey,
    state: PipelineState | None,
    changes: Sequence[Change],
    failures_after: FailuresAfter,
) -> PipelineState:
    """The state after ``changes`` from the state before; raises NeedsRecount where only
    the stored runs can tell. ``failures_after(key, t)`` counts the stored failed runs that
    started after ``t`` (the changes included): needed when a success arrives while a run
    that started after it is already stored."""
    news: list[RunRecord] = []
    was: dict[str, RunRecord] = {}
    added = 0
    for old, new in changes:
        if old is not None and key_of(old) == key:
            if key_of(new) != key:
                raise NeedsRecount  # a run left this pipeline or env
            if sort_time(old) != sort_time(new):
                raise NeedsRecount  # a run moved in time
            if old.status == SUCCESS and new.status != SUCCESS:
                raise NeedsRecount  # a success was withdrawn
            was[new.run_id] = old
        elif key_of(new) == key:
            added += 1
        if key_of(new) == key:
            news.append(new)
    if not news:
        if state is None:
            raise NeedsRecount
        return state

    candidates = [(sort_time(n), n.run_id, n.status) for n in news]
    if state is not None and state.last_run_id not in {n.run_id for n in news}:
        candidates.append((state.last_run_at, state.last_run_id, state.last_status))
    last_at, last_id, last_status = max(candidates)

    since = state.last_success_t if state is not None else None
    since_id = state.last_success_run_id if state is not None else None
    success_at = state.last_success_at if state is not None else None
    failures = state.consecutive_failures if state is not None else 0
    successes = [n for n in news if n.status == SUCCESS]
    best = max(successes, key=lambda r: (sort_time(r), r.run_id)) if successes else None

    if best is not None and (
        since is None or since_id is None or (sort_time(best), best.run_id) > (since, since_id)
    ):
        moved_on = since is None or sort_time(best) > since
        since, since_id = sort_time(best), best.run_id
        success_at = best.ended_at or since
        if moved_on:
            if state is not None and state.last_run_at > since:
                # Runs stored earlier started after this success: count their failures.
                failures = failures_after(key, since)
            else:
                failures = sum(1 for n in news if n.status == FAILED and sort_time(n) > since)
            return _state(
                key,
                state,
                added,
                last_id,
                last_at,
                last_status,
                since_id,
                since,
                success_at,
                failures,
            )
    elif best is not None and best.run_id == since_id:
        success_at = best.ended_at or since  # the same success, reported again

    for n in news:
        before = was.get(n.run_id)
        counted = before is not None and before.status == FAILED
        if n.status == FAILED and not counted and (since is None or sort_time(n) > since):
            failures += 1
    return _state(
        key, state, added, last_id, last_at, last_status, since_id, since, success_at, failures
    )


def _state(
    key: PipelineKey,
    state: PipelineState | None,
    added: int,
    last_id: str,
    last_at: datetime,
    last_status: str,
    since_id: str | None,
    since: datetime | None,
    success_at: datetime | None,
    failures: int,
) -> PipelineState:
    return PipelineState(
        *key,
        runs=(state.runs if state is not None else 0) + added,
        last_run_id=last_id,
        last_run_at=last_at,
        last_status=last_status,
        last_success_run_id=since_id,
        last_success_t=since,
        last_success_at=success_at,
        consecutive_failures=failures,
    )


# The failed runs after a pipeline's last success (run_id -> start): what the writer may keep
# beside the state so that a success arriving late needs no count of the stored runs.
Streak = dict[str, datetime]


def _with_changes(streak: Streak, key: PipelineKey, changes: Sequence[Change]) -> Streak:
    merged = dict(streak)
    for _, new in changes:
        if key_of(new) == key:
            merged.pop(new.run_id, None)
            if new.status == FAILED:
                merged[new.run_id] = sort_time(new)
    return merged


def failures_in(streak: Streak, key: PipelineKey, changes: Sequence[Change], t: datetime) -> int:
    """``failures_after(key, t)`` from the streak before ``changes`` (t not before the last
    success): every failed run after t is in the streak or among the changes."""
    return sum(1 for s in _with_changes(streak, key, changes).values() if s > t)


def next_streak(
    streak: Streak, key: PipelineKey, changes: Sequence[Change], state: PipelineState
) -> Streak | None:
    """The streak after ``changes`` led to ``state``; None when it does not add up."""
    since = state.last_success_t
    out = {
        rid: t
        for rid, t in _with_changes(streak, key, changes).items()
        if since is None or t > since
    }
    return out if len(out) == state.consecutive_failures else None
