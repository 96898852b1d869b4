"""Rollups against a brute-force computation over the raw points, on both backends: count,
sum, min, max and percentiles at every level, late points merged into their bucket, and
retention per level."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.ingest.writer import Writer
from flowdeck.store import Store
from flowdeck.store.metrics_sql import LEVELS, MetricsSql
from flowdeck.timeseries import sketch
from flowdeck.timeseries.compaction import Compactor, cutoffs
from flowdeck.timeseries.points import SeriesKey
from tests.conftest import FixedClock
from tests.metrics_api.conftest import batch_of, series_bins, series_summary

T0 = 1_763_596_800  # 2025-11-20T00:00:00Z
FAR = 4_000_000_000
_names = itertools.count()

values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-1000, max_value=1000).map(float),
    st.just(0.0),
)
points = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.floats(min_value=0, max_value=3 * 86_400, allow_nan=False).map(lambda s: round(s, 3)),
        values,
    ),
    min_size=1,
    max_size=60,
)


def metrics(store: Store) -> MetricsSql:
    assert isinstance(store, MetricsSql)
    return store


def brute(rows: list[tuple[str, float, float]], width: int) -> dict[tuple[str, int], list[float]]:
    buckets: dict[tuple[str, int], list[float]] = defaultdict(list)
    for host, at, value in rows:
        second = math.floor(round((T0 + at) * 1_000_000) / 1_000_000)
        buckets[(host, second - second % width)].append(value)
    return buckets


def close_to(estimate: float | None, exact: float) -> bool:
    assert estimate is not None
    return abs(estimate - exact) <= sketch.RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9) + 1e-300


def write(
    writer: Writer, name: str, rows: list[tuple[str, float, float]], columns: bool = False
) -> None:
    """One request of these points: one by one, or as series in columns (one per host)."""
    body: list[dict[str, Any]] = [
        {"name": name, "time": T0 + at, "value": value, "tags": {"host": host}}
        for host, at, value in rows
    ]
    if columns:
        body = [
            {
                "name": name,
                "tags": {"host": host},
                "times": [T0 + at for h, at, _ in rows if h == host],
                "values": [value for h, _, value in rows if h == host],
            }
            for host in sorted({h for h, _, _ in rows})
        ]
    writer.submit_points(batch_of(body), 1_000).result()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=points,
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=2),
    columns=st.booleans(),
)
def test_rollups_equal_brute_force_at_every_level(
    store: Store,
    writer: Writer,
    rows: list[tuple[str, float, float]],
    cuts: list[int],
    columns: bool,
) -> None:
    # Points arrive in up to three requests, out of time order: late ones merge.
    name = f"m{next(_names)}"
    edges = sorted({min(c, len(rows)) for c in cuts} | {0, len(rows)})
    for first, last in itertools.pairwise(edges):
        write(writer, name, rows[first:last], columns)
    ms = metrics(store)
    ids = {h: SeriesKey("default", name, (("host", h),)).series_id for h in "ab"}
    for width in (0, *LEVELS):
        step = width or 60
        expected = brute(rows, step)
        summary = series_summary(ms, "default", name, width, 0, FAR, step)
        assert set(summary) == {(ids[h], b) for h, b in expected}
        bins = series_bins(ms, "default", name, width, 0, FAR, step)
        for (host, bucket), vals in expected.items():
            n, total, lo, hi = summary[(ids[host], bucket)]
            assert (n, lo, hi) == (len(vals), min(vals), max(vals))
            assert total == pytest.approx(math.fsum(vals), rel=1e-9, abs=1e-6)
            ordered = sorted(vals)
            for q in (0.5, 0.95, 0.99):
                exact = ordered[math.floor(q * (len(ordered) - 1))]
                assert close_to(sketch.quantile(bins[(ids[host], bucket)], q), exact)
        for q in (0.5, 0.95, 0.99):
            # The database's quantile is the sketch's, bucket by bucket.
            members = {sid: sid for sid in ids.values()}
            found = ms.group_quantiles(members, width, 0, FAR, step, q)
            assert {(sid, b): v for sid, b, v in found} == {
                key: sketch.quantile(got, q) for key, got in bins.items()
            }
        if width:
            # The same buckets read from the raw points give the very same sketch.
            raw = series_bins(ms, "default", name, 0, 0, FAR, step)
            assert {k: sorted(v) for k, v in raw.items()} == {k: sorted(v) for k, v in bins.items()}


@settings(max_examples=200, deadline=None)
@given(value=st.floats(min_value=-sketch.MAX_MAGNITUDE, max_value=sketch.MAX_MAGNITUDE))
def test_bins_follow_the_ddsketch_mapping(value: float) -> None:
    sign, key = sketch.bin_of(value)
    if sign:
        # The library's own key, give or take one where a value sits on a bin edge.
        assert abs(key - sketch.MAPPING.key(abs(value))) <= 1
        assert close_to(sketch.MAPPING.value(key), abs(value))
    else:
        assert abs(value) <= sketch.MIN_POSITIVE


def test_a_late_point_merges_into_its_existing_bucket(store: Store, writer: Writer) -> None:
    write(writer, "lat", [("a", 10, 5.0), ("a", 4_000, 7.0)])
    write(writer, "lat", [("a", 30, 1.0), ("a", 50, 9.0)])  # late: the first minute again
    ms = metrics(store)
    sid = SeriesKey("default", "lat", (("host", "a"),)).series_id
    minute = series_summary(ms, "default", "lat", 60, 0, FAR, 60)
    assert minute[(sid, T0)] == (3, 15.0, 1.0, 9.0)
    hour = series_summary(ms, "default", "lat", 3_600, 0, FAR, 3_600)
    assert hour == {(sid, T0): (3, 15.0, 1.0, 9.0), (sid, T0 + 3_600): (1, 7.0, 7.0, 7.0)}
    bins = series_bins(ms, "default", "lat", 60, 0, FAR, 60)[(sid, T0)]
    assert sum(n for _, _, n in bins) == 3
    assert close_to(sketch.quantile(bins, 0.5), 5.0)


def test_retention_per_level(store: Store, writer: Writer) -> None:
    now = datetime.fromtimestamp(T0, UTC) + timedelta(days=400)
    ages = {"raw_kept": 6, "raw_gone": 8, "m1_gone": 31, "h_kept": 300, "h_gone": 366}
    rows = [(h, (400 - d) * 86_400.0 + 30, 1.0) for h, d in [("a", d) for d in ages.values()]]
    write(writer, "ret", rows)
    ms = metrics(store)
    raw, levels = cutoffs(now, (7, 30, 90, 365, 1825))
    writer.submit_call(lambda: ms.compact_metrics(raw, levels)).result()

    def days_left(width: int) -> list[int]:
        got = series_summary(ms, "default", "ret", width, 0, FAR, width or 60)
        return sorted(400 - (bucket - T0) // 86_400 for (_, bucket) in got)

    assert days_left(0) == [6]
    assert days_left(60) == [6, 8]
    assert days_left(300) == [6, 8, 31]
    assert days_left(3_600) == [6, 8, 31, 300]
    assert days_left(86_400) == [6, 8, 31, 300, 366]
    # Past every retention the series itself goes.
    raw, levels = cutoffs(now + timedelta(days=3_000), (7, 30, 90, 365, 1825))
    writer.submit_call(lambda: ms.compact_metrics(raw, levels)).result()
    assert ms.list_metric_names("default") == []


def test_the_compactor_applies_retention_as_of_its_clock(
    store: Store, writer: Writer, clock: FixedClock
) -> None:
    write(writer, "cmp", [("a", 0.0, 1.0)])
    ms = metrics(store)
    clock.now = datetime.fromtimestamp(T0, UTC) + timedelta(days=8)
    compactor = Compactor(ms, writer, (7, 30, 90, 365, 1825), clock)
    asyncio.run(compactor.compact())
    assert compactor.runs == 1
    assert compactor.last_run == clock.now
    assert series_summary(ms, "default", "cmp", 0, 0, FAR, 60) == {}
    assert len(series_summary(ms, "default", "cmp", 60, 0, FAR, 60)) == 1


def test_points_wait_for_their_commit_and_fail_alone(store: Store, writer: Writer) -> None:
    ms = metrics(store)
    ok: Any = writer.submit_points(batch_of([{"name": "w", "time": T0, "value": 1}]), 1)
    over: Any = writer.submit_points(
        batch_of([{"name": "w", "time": T0, "value": 1, "tags": {"x": "1"}}]), 1
    )
    assert ok.result() == 1
    with pytest.raises(Exception, match="would have 2 tag combinations"):
        over.result()
    assert ms.list_metric_names("default") == [("w", 1)]
