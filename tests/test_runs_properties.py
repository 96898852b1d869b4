"""Properties of the merge that must hold for any sequence of reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flowdeck.runs import RANK, RunProblem, RunRecord, merge
from tests.conftest import T0

NOW = T0 + timedelta(days=1)

times = st.integers(0, 3600).map(lambda s: T0 + timedelta(seconds=s))
counts = st.integers(0, 10**9)
reports = st.fixed_dictionaries(
    {"run_id": st.just("r"), "pipeline": st.just("p")},
    optional={
        "status": st.sampled_from(["PENDING", "RUNNING", "SUCCESS", "FAILED"]),
        "batch_id": st.sampled_from(["b1", "b2"]),
        "started_at": times,
        "ended_at": times,
        "duration_s": st.floats(0, 1e6),
        "rows_read": counts,
        "rows_written": counts,
        "rows_invalid": counts,
        "custom_stats": st.dictionaries(
            st.sampled_from(["scd2_new", "scd2_changed", "dq_failed_rows", "sku_count"]), counts
        ),
        "labels": st.dictionaries(st.sampled_from(["team", "retailer"]), st.text(max_size=5)),
        "error_message": st.text(max_size=10),
    },
)


def apply(sequence: list[dict[str, Any]]) -> list[RunRecord]:
    states: list[RunRecord] = []
    current: RunRecord | None = None
    for report in sequence:
        try:
            current = merge(current, report, NOW)
        except RunProblem:
            continue  # refused at the edge (end before start); state unchanged
        states.append(current)
    return states


@given(st.lists(reports, min_size=1, max_size=8))
def test_status_never_moves_backwards(sequence: list[dict[str, Any]]) -> None:
    ranks = [RANK[s.status] for s in apply(sequence)]
    assert ranks == sorted(ranks)


@given(st.lists(reports, min_size=1, max_size=6), reports)
def test_reposting_a_report_changes_nothing(sequence: list[dict[str, Any]], last: Any) -> None:
    states = apply([*sequence, last])
    if not states:
        return
    once = states[-1]
    try:
        twice = merge(once, last, NOW)
    except RunProblem:
        return
    assert replace(twice, updated_at=once.updated_at) == once


@given(st.lists(reports, min_size=1, max_size=8))
def test_derived_values_follow_the_merged_fields(sequence: list[dict[str, Any]]) -> None:
    for state in apply(sequence):
        if "duration_s" in state.derived:
            assert state.started_at is not None and state.ended_at is not None
            assert state.duration_s == max((state.ended_at - state.started_at).total_seconds(), 0)
        if "dq_errors" in state.derived and state.rows_invalid is not None:
            assert state.dq_errors == state.rows_invalid
        assert state.dq_errors is not None and state.dq_errors >= 0
