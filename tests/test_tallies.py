"""A batch's numbers brought up to date from a commit's changes always equal a count of all
its runs (the definition, ``batch_aggregates_sql``, written again here in Python)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowdeck.runs import RunProblem, RunRecord, merge
from flowdeck.store.base import BatchKey, BatchRow
from flowdeck.store.tallies import SUMMED, Change, NeedsRefresh, advance_batch, dq_warning
from tests.conftest import T0


def count(key: BatchKey, runs: Iterable[RunRecord], now: datetime) -> BatchRow | None:
    """The definition: a batch's row from all its runs (None when it has none)."""
    mine = [r for r in runs if (r.project, r.batch_id) == key]
    if not mine:
        return None
    starts = [r.started_at for r in mine if r.started_at is not None]
    ends = [r.ended_at for r in mine if r.ended_at is not None]
    by_status = {s: sum(r.status == s for r in mine) for s in ("SUCCESS", "FAILED")}
    sums = {name: sum(getattr(r, name) or 0 for r in mine) for name in SUMMED}
    return BatchRow(
        project=key[0],
        batch_id=key[1],
        env=min(r.env for r in mine),
        started_at=min(starts, default=None),
        ended_at=max(ends, default=None),
        sort_at=min(starts) if starts else min(r.created_at for r in mine),
        total=len(mine),
        succeeded=by_status["SUCCESS"],
        failed=by_status["FAILED"],
        running=sum(r.status == "RUNNING" for r in mine),
        pending=sum(r.status == "PENDING" for r in mine),
        dq_warning_processes=sum(dq_warning(r) for r in mine),
        updated_at=now,
        **sums,
    )


times = st.sampled_from([T0 + timedelta(minutes=m) for m in (0, 5, 10)])
reports = st.fixed_dictionaries(
    {"run_id": st.sampled_from([f"r{i}" for i in range(5)])},
    optional={
        "batch_id": st.sampled_from(["b1", "b2"]),
        "env": st.sampled_from(["prod", "dev"]),
        "status": st.sampled_from(["PENDING", "RUNNING", "SUCCESS", "FAILED"]),
        "started_at": times,
        "ended_at": st.sampled_from([T0 + timedelta(minutes=20), T0 + timedelta(minutes=30)]),
        "rows_read": st.sampled_from([0, 50, 1000]),
        "rows_invalid": st.sampled_from([0, 5, 20]),
        "dq_errors": st.sampled_from([0, 11]),
    },
)
commits = st.lists(st.lists(reports, min_size=1, max_size=4), min_size=1, max_size=8)


def replay(commits: list[list[dict[str, Any]]]) -> None:
    stored: dict[str, RunRecord] = {}
    rows: dict[BatchKey, BatchRow] = {}
    for number, commit in enumerate(commits):
        now = T0 + timedelta(hours=number)
        before: dict[str, RunRecord | None] = {}
        after: dict[str, RunRecord] = {}
        for report in commit:
            rid = report["run_id"]
            if rid not in stored and rid not in after:
                report = {"pipeline": "p1", "batch_id": "b1", **report}
            try:
                merged = merge(after.get(rid) or stored.get(rid), report, now)
            except RunProblem:
                continue
            before.setdefault(rid, stored.get(rid))
            after[rid] = merged
        stored.update(after)
        mine: dict[BatchKey, list[Change]] = {}
        left: set[BatchKey] = set()
        for rid, new in after.items():
            old = before[rid]
            key = (new.project, new.batch_id)
            same = old is not None and (old.project, old.batch_id) == key
            mine.setdefault(key, []).append((old if same else None, new))
            if old is not None and not same:
                left.add((old.project, old.batch_id))
        for key in left | set(mine):
            expected = count(key, stored.values(), now)
            if key in left or expected is None:
                # What the writer does: a batch a run left is counted again in SQL.
                if expected is None:
                    rows.pop(key, None)
                else:
                    rows[key] = expected
                continue
            try:
                rows[key] = advance_batch(key, rows.get(key), mine[key], now)
            except NeedsRefresh:
                rows[key] = expected
            assert rows[key] == expected, (number, key)


@settings(max_examples=400)
@given(commits)
def test_tallies_equal_a_count(commits: list[list[dict[str, Any]]]) -> None:
    replay(commits)


def test_a_batch_gets_its_first_start() -> None:
    key = ("default", "b1")
    pending = merge(None, {"run_id": "a", "pipeline": "p", "batch_id": "b1"}, T0)
    row = advance_batch(key, None, [(None, pending)], T0)
    assert (row.sort_at, row.pending, row.started_at) == (T0, 1, None)
    started = merge(pending, {"run_id": "a", "started_at": T0 - timedelta(hours=1)}, T0)
    row = advance_batch(key, row, [(pending, started)], T0)
    assert (row.sort_at, row.running, row.pending) == (T0 - timedelta(hours=1), 1, 0)


def test_the_earliest_start_moving_later_needs_a_count() -> None:
    key = ("default", "b1")
    a = merge(None, {"run_id": "a", "pipeline": "p", "batch_id": "b1", "started_at": T0}, T0)
    row = advance_batch(key, None, [(None, a)], T0)
    later = merge(a, {"run_id": "a", "started_at": T0 + timedelta(minutes=1)}, T0)
    with pytest.raises(NeedsRefresh):
        advance_batch(key, row, [(a, later)], T0)
