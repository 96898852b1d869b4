"""The quantile found in SQL (``sketch.quantile_sql`` through ``group_quantiles``) against the
ddsketch library over the same bins, on both backends: random bins on both sides of zero and
in the zero bin, series merged into groups, empty buckets; and schema version 9 moving the
bins of version 8 into one table per level."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.store import DenseStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.errors import StoreUnavailable
from flowdeck.store import Store, open_store
from flowdeck.store import schema as schema_mod
from flowdeck.store.metrics_sql import BIN_TABLES, MetricsSql
from flowdeck.timeseries import sketch
from tests.conftest import store_at_version

HOUR = 3_600
T0 = 1_763_596_800  # 2025-11-20T00:00:00Z
FAR = 4_000_000_000

# (series, hour, sign, bin, count): bins of up to four series over three hours.
bin_rows = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=4),
        st.integers(min_value=0, max_value=2),
        st.sampled_from([-1, 0, 1]),
        st.integers(min_value=-40, max_value=40),
        st.integers(min_value=1, max_value=1_000),
    ),
    min_size=1,
    max_size=80,
)


def metrics(store: Store) -> MetricsSql:
    assert isinstance(store, MetricsSql)
    return store


def put_bins(ms: MetricsSql, table: str, rows: Sequence[tuple[int, int, int, int, int]]) -> None:
    """Rows (series_id, bucket, sign, bin, n) straight into a bin table (a key once)."""
    merged: dict[tuple[int, int, int, int], int] = defaultdict(int)
    for sid, bucket, sign, key, n in rows:
        merged[(sid, bucket, sign, key if sign else 0)] += n
    with ms.write_transaction() as cur:
        ms._q(cur, f"DELETE FROM {table}")
        for (sid, bucket, sign, key), n in merged.items():
            ms._q(
                cur,
                f"INSERT INTO {table} (series_id, bucket, sign, bin, n) "
                "VALUES (:s, :b, :sign, :k, :n)",
                {"s": sid, "b": bucket, "sign": sign, "k": key, "n": n},
            )


def library_quantile(bins: Sequence[sketch.Bin], q: float) -> float | None:
    """The ddsketch library's own answer, its sketch built here without flowdeck's help."""
    positive, negative, zero = DenseStore(), DenseStore(), 0.0
    for sign, key, n in bins:
        if sign > 0:
            positive.add(key, float(n))
        elif sign < 0:
            negative.add(key, float(n))
        else:
            zero += n
    value = BaseDDSketch(sketch.MAPPING, positive, negative, zero).get_quantile_value(q)
    return None if value is None else float(value)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=bin_rows,
    groups=st.sampled_from(["each", "all", "pairs"]),
    q=st.one_of(st.sampled_from([0.0, 0.5, 0.95, 0.99, 1.0]), st.floats(0.0, 1.0)),
    step=st.sampled_from([HOUR, 2 * HOUR]),
)
def test_the_sql_quantile_is_the_librarys(
    store: Store, rows: list[tuple[int, int, int, int, int]], groups: str, q: float, step: int
) -> None:
    ms = metrics(store)
    put_bins(ms, BIN_TABLES[HOUR], [(s, T0 + h * HOUR, sign, k, n) for s, h, sign, k, n in rows])
    divisor = {"each": 1, "all": 8, "pairs": 2}[groups]
    members = {sid: sid // divisor for sid in range(1, 5)}
    expected: dict[tuple[int, int], list[sketch.Bin]] = defaultdict(list)
    for sid, hour, sign, key, n in rows:
        bucket = T0 + hour * HOUR
        expected[(members[sid], bucket - bucket % step)].append((sign, key if sign else 0, n))
    got = ms.group_quantiles(members, HOUR, T0, T0 + 4 * HOUR, step, q)
    # One row per group and bucket with data, in order; buckets without bins are absent.
    assert [(g, b) for g, b, _ in got] == sorted(expected)
    for g, bucket, value in got:
        assert value == library_quantile(expected[(g, bucket)], q)
    # The same answer as the sketch built from the bins the store reads back.
    bins = ms.group_bins(members, HOUR, T0, T0 + 4 * HOUR, step)
    assert {(g, b): v for g, b, v in got} == {
        key: sketch.quantile(found, q) for key, found in bins.items()
    }


@pytest.mark.parametrize(
    ("bins", "want"),
    [
        ([(0, 0, 5)], 0.0),  # only the zero bin
        ([(-1, 10, 3), (-1, 2, 1)], -sketch.MAPPING.value(10)),  # only negatives
        ([(-1, 3, 1), (0, 0, 98), (1, 7, 1)], 0.0),  # the rank falls in the zero bin
        ([(-1, 3, 1), (0, 0, 1), (1, 7, 98)], sketch.MAPPING.value(7)),
        ([(1, -5, 10), (1, 5, 10)], sketch.MAPPING.value(5)),  # keys below 0: values < 1
    ],
)
def test_negative_values_and_the_zero_bin(
    store: Store, bins: list[sketch.Bin], want: float
) -> None:
    ms = metrics(store)
    put_bins(ms, BIN_TABLES[HOUR], [(1, T0, sign, key, n) for sign, key, n in bins])
    q = 0.5 if len(bins) > 2 else 0.95
    assert ms.group_quantiles({1: 0}, HOUR, T0, T0 + HOUR, HOUR, q) == [(0, T0, want)]
    assert want == library_quantile(bins, q)


def test_no_series_and_no_data_give_no_rows(store: Store) -> None:
    ms = metrics(store)
    assert ms.group_quantiles({}, HOUR, T0, T0 + HOUR, HOUR, 0.95) == []
    assert ms.group_quantiles({1: 0}, HOUR, T0, T0 + HOUR, HOUR, 0.95) == []
    assert ms.group_quantiles({1: 0}, 0, T0, T0 + HOUR, HOUR, 0.95) == []


@pytest.fixture
def version_8(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A database at schema version 8: the bins of every level in ``metric_sketch_bins``."""
    with store_at_version(db_url, 8, monkeypatch) as old:
        yield old


def test_version_9_moves_the_bins_into_a_table_per_level(version_8: Store, db_url: str) -> None:
    ms = metrics(version_8)
    old_rows: list[tuple[Any, ...]] = []
    for width in BIN_TABLES:
        bucket = T0 - T0 % width
        old_rows += [
            (7, width, bucket, 1, 100, 3),
            (7, width, bucket, -1, 20, 2),
            (7, width, bucket, 0, 0, 1),
            (8, width, bucket, 1, 100, width),  # the count tells the levels apart
        ]
    with ms.write_transaction() as cur:
        for row in old_rows:
            ms._q(
                cur,
                "INSERT INTO metric_sketch_bins (series_id, level, bucket, sign, bin, n) "
                "VALUES (:s, :w, :b, :sign, :k, :n)",
                dict(zip(("s", "w", "b", "sign", "k", "n"), row, strict=True)),
            )
    version_8.close()
    store = open_store(db_url)
    try:
        assert store.migrate() == schema_mod.LATEST
        ms = metrics(store)
        for width in BIN_TABLES:
            bucket = T0 - T0 % width
            bins = ms.group_bins({7: 0, 8: 1}, width, 0, FAR, width)
            assert sorted(bins[(0, bucket)]) == [(-1, 20, 2), (0, 0, 1), (1, 100, 3)]
            assert bins[(1, bucket)] == [(1, 100, width)]
            assert ms.group_quantiles({7: 0, 8: 0}, width, 0, FAR, width, 0.0) == [
                (0, bucket, -sketch.MAPPING.value(20))
            ]
        with pytest.raises(StoreUnavailable, match="metric_sketch_bins"), ms.reader() as cur:
            ms._q(cur, "SELECT count(*) FROM metric_sketch_bins")
    finally:
        store.close()
