"""The writer's incremental pipeline state always equals a recount from all the runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.pipelines import (
    Change,
    NeedsRecount,
    PipelineKey,
    PipelineState,
    Streak,
    advance,
    failures_in,
    key_of,
    next_streak,
    recount,
    sort_time,
)
from flowdeck.runs import RunProblem, RunRecord, merge
from tests.conftest import T0

times = st.sampled_from([T0 + timedelta(minutes=m) for m in (0, 5, 10, 15)])
reports = st.fixed_dictionaries(
    {"run_id": st.sampled_from([f"r{i}" for i in range(6)])},
    optional={
        "pipeline": st.sampled_from(["p1", "p2"]),
        "env": st.sampled_from(["prod", "dev"]),
        "status": st.sampled_from(["PENDING", "RUNNING", "SUCCESS", "FAILED"]),
        "started_at": times,
        "ended_at": st.sampled_from([T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)]),
    },
)
commits = st.lists(st.lists(reports, min_size=1, max_size=4), min_size=1, max_size=8)


def replay(batches: list[list[dict[str, Any]]]) -> None:
    stored: dict[str, RunRecord] = {}
    states: dict[PipelineKey, Any] = {}
    streaks: dict[PipelineKey, Streak] = {}
    for number, batch in enumerate(batches):
        now = T0 + timedelta(hours=number)
        before: dict[str, RunRecord | None] = {}
        after: dict[str, RunRecord] = {}
        for report in batch:
            report = {"pipeline": "p1", **report} if report["run_id"] not in stored else report
            rid = report["run_id"]
            try:
                merged = merge(after.get(rid) or stored.get(rid), report, now)
            except RunProblem:
                continue
            before.setdefault(rid, stored.get(rid))
            after[rid] = merged
        changes: list[Change] = [(before[rid], after[rid]) for rid in after]
        stored.update(after)
        keys = {key_of(n) for _, n in changes} | {key_of(o) for o, _ in changes if o}

        def failures_after(key: PipelineKey, t: Any) -> int:
            return sum(
                1
                for r in stored.values()
                if key_of(r) == key and r.status == "FAILED" and sort_time(r) > t
            )

        for key in keys:
            streak = streaks.pop(key, None)

            def from_streak(
                k: PipelineKey,
                t: Any,
                streak: Streak | None = streak,
                changes: list[Change] = changes,
            ) -> int:
                # What the writer does when it remembers the streak: no count of the runs.
                assert streak is not None
                count = failures_in(streak, k, changes, t)
                assert count == failures_after(k, t)
                return count

            state: PipelineState | None
            try:
                state = advance(
                    key, states.get(key), changes, failures_after if streak is None else from_streak
                )
                if streak is not None:
                    again = next_streak(streak, key, changes, state)
                    assert again is not None, (number, key)
                    streaks[key] = again
            except NeedsRecount:
                state = recount(key, stored.values())
            states[key] = state
            assert state == recount(key, stored.values()), (number, key)
            if state is not None and key not in streaks and state.consecutive_failures == 0:
                streaks[key] = {}


@settings(max_examples=400)
@given(commits)
def test_incremental_state_equals_a_recount(batches: list[list[dict[str, Any]]]) -> None:
    replay(batches)


def no_count(key: PipelineKey, t: Any) -> int:
    raise AssertionError("in-order runs never need a count")


def test_streak_and_last_success() -> None:
    day = timedelta(days=1)
    reports = [
        {
            "run_id": f"d{i}",
            "pipeline": "etl",
            "status": s,
            "started_at": T0 + i * day,
            "ended_at": T0 + i * day + timedelta(minutes=5),
        }
        for i, s in enumerate(["SUCCESS", "FAILED", "SUCCESS", "FAILED", "FAILED"])
    ]
    state = None
    stored: list[RunRecord] = []
    for report in reports:
        record = merge(None, report, T0)
        stored.append(record)
        state = advance(("default", "etl", "default"), state, [(None, record)], no_count)
    assert state is not None
    assert (state.runs, state.last_run_id, state.consecutive_failures) == (5, "d4", 2)
    assert state.last_success_at == T0 + 2 * day + timedelta(minutes=5)
    assert state == recount(("default", "etl", "default"), stored)
