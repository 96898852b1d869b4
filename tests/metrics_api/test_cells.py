"""Kept percentiles (``store/metric_cells.py``) on both backends: a percentile answered from
the cells is the one the sketch bins give, before and after the cells are computed, for the
whole metric and per tag value (series without the tag included); late points and new
series make a bucket stale until it is recomputed; retention drops cells and marks; schema
version 10 marks the existing rollups stale; and the API answers from them."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from flowdeck.store import Store, open_store
from flowdeck.store import schema as schema_mod
from flowdeck.store.metric_cells import (
    CELL_LEVELS,
    CELL_QUANTILES,
    WHOLE,
    StaleMetric,
    bucket_runs,
    groupings,
    numbered,
    tag_values,
)
from flowdeck.store.metrics_sql import MetricsSql
from tests.conftest import store_at_version
from tests.metrics_api.conftest import batch_of

T0 = 1_763_596_800  # 2025-11-20T00:00:00Z, a Thursday
NOW = datetime(2025, 11, 23, tzinfo=UTC)
_names = itertools.count()


def metrics(store: Store) -> MetricsSql:
    assert isinstance(store, MetricsSql)
    return store


def points(name: str, n: int, seed: int, spread: int = 2 * 86_400) -> list[dict[str, Any]]:
    """``n`` lognormal points over ``spread`` seconds from T0, in series service × region,
    some without a region."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        tags = {"service": rnd.choice(["api", "db", "web"])}
        if rnd.random() < 0.8:
            tags["region"] = rnd.choice(["eu", "us"])
        value = math.exp(rnd.gauss(3.0, 0.8)) * rnd.choice([1, 1, 1, -1])
        at = T0 + rnd.uniform(0, spread)
        out.append({"name": name, "time": at, "value": value, "tags": tags})
    return out


def write(ms: MetricsSql, body: list[dict[str, Any]]) -> None:
    assert ms.add_points([batch_of(body)], 10_000, NOW) == [None]


def refresh_all(ms: MetricsSql) -> int:
    done = 0
    for item in ms.stale_metrics():
        while n := ms.refresh_cells(item):
            done += n
    assert ms.stale_metrics() == []
    return done


def from_bins(
    ms: MetricsSql, name: str, tag: str, level: int, q: float
) -> set[tuple[str, int, float]]:
    """The same answer through the bins of every bucket (``group_quantiles``)."""
    members, names = numbered(tag_values(ms.list_metric_series("default", name), tag))
    rows = ms.group_quantiles(members, level, 0, 4_000_000_000, level, q)
    return {(names[g], bucket, value) for g, bucket, value in rows}


def from_cells(
    ms: MetricsSql, name: str, tag: str, level: int, q: float
) -> set[tuple[str, int, float]]:
    values = tag_values(ms.list_metric_series("default", name), tag)
    return set(ms.cell_quantiles("default", name, tag, values, level, 0, 4_000_000_000, q))


def cell_count(ms: MetricsSql, name: str) -> int:
    with ms.reader() as cur:
        ms._q(cur, "SELECT count(*) FROM metric_cells WHERE metric = :m", {"m": name})
        return int(cur.fetchall()[0][0])


def stale_count(ms: MetricsSql) -> int:
    with ms.reader() as cur:
        ms._q(cur, "SELECT count(*) FROM metric_stale")
        return int(cur.fetchall()[0][0])


def assert_same_answers(ms: MetricsSql, name: str) -> None:
    for level in CELL_LEVELS:
        for tag in (WHOLE, "service", "region"):
            for q in CELL_QUANTILES:
                want = from_bins(ms, name, tag, level, q)
                assert want
                assert from_cells(ms, name, tag, level, q) == want, (level, tag, q)


def test_bucket_runs_split_where_a_bucket_is_missing() -> None:
    assert list(bucket_runs([], 60)) == []
    buckets = [0, 60, 120, 300, 360, 600]
    assert list(bucket_runs(buckets, 60, gap=0)) == [(0, 180), (300, 420), (600, 660)]
    assert list(bucket_runs(buckets, 60, gap=2)) == [(0, 420), (600, 660)]
    assert list(bucket_runs(buckets, 60, gap=3)) == [(0, 660)]


def test_groupings_give_the_whole_metric_and_each_tag() -> None:
    series = {1: {"a": "x"}, 2: {"a": "y", "b": "z"}}
    assert groupings(series) == {
        WHOLE: {1: WHOLE, 2: WHOLE},
        "a": {1: "x", 2: "y"},
        "b": {1: WHOLE, 2: "z"},
    }


def test_cells_answer_as_the_bins_do_before_and_after_refresh(store: Store) -> None:
    ms = metrics(store)
    name = f"lat{next(_names)}"
    write(ms, points(name, 3_000, seed=1))
    assert stale_count(ms) > 0
    assert cell_count(ms, name) == 0
    assert_same_answers(ms, name)  # every bucket stale: answered from the bins
    done = refresh_all(ms)
    assert done > 0
    assert stale_count(ms) == 0
    assert cell_count(ms, name) > 0
    assert_same_answers(ms, name)  # every bucket fresh: answered from the cells
    assert refresh_all(ms) == 0  # nothing left to do


def test_a_late_point_and_a_new_series_make_their_bucket_stale(store: Store) -> None:
    ms = metrics(store)
    name = f"lat{next(_names)}"
    write(ms, points(name, 1_000, seed=2))
    refresh_all(ms)
    # A late point far above the rest moves the p99 of its hour; until the cells are
    # recomputed its bucket is read from the bins.
    write(ms, [{"name": name, "time": T0 + 10, "value": 1e9, "tags": {"service": "api"}}] * 30)
    assert stale_count(ms) == len(CELL_LEVELS)
    # A series no cell has seen yet, in a bucket of its own.
    write(ms, [{"name": name, "time": T0 + 3_000, "value": 5.0, "tags": {"service": "queue"}}])
    assert_same_answers(ms, name)
    hour = {(v, b): x for v, b, x in from_cells(ms, name, "service", 3_600, 0.99)}
    assert hour[("api", T0)] == pytest.approx(1e9, rel=0.01)
    assert hour[("queue", T0)] == pytest.approx(5.0, rel=0.01)
    refresh_all(ms)
    assert_same_answers(ms, name)


def test_refresh_takes_a_bounded_share_of_buckets_at_a_time(store: Store) -> None:
    ms = metrics(store)
    name = f"lat{next(_names)}"
    # 12 series over 12 days: 3,456 buckets of 5 minutes, more than one transaction's share.
    write(ms, points(name, 6_000, seed=3, spread=12 * 86_400))
    five = StaleMetric("default", name, 300)
    first = ms.refresh_cells(five)
    assert 0 < first < 3_456
    assert ms.refresh_cells(five) > 0
    assert StaleMetric("default", name, 300) in ms.stale_metrics()
    refresh_all(ms)
    assert_same_answers(ms, name)


def test_retention_drops_cells_and_marks(store: Store) -> None:
    ms = metrics(store)
    name = f"lat{next(_names)}"
    write(ms, points(name, 500, seed=4, spread=3 * 86_400))
    refresh_all(ms)
    write(ms, points(name, 50, seed=5, spread=3 * 86_400))  # stale marks again
    before = cell_count(ms, name)
    cut = T0 + 86_400
    ms.compact_metrics(0, {60: 0, 300: cut, 3_600: cut, 86_400: cut})
    with ms.reader() as cur:
        ms._q(cur, "SELECT min(bucket) FROM metric_cells")
        assert int(cur.fetchall()[0][0]) >= cut
        ms._q(cur, "SELECT min(bucket) FROM metric_stale")
        assert int(cur.fetchall()[0][0]) >= cut
    assert 0 < cell_count(ms, name) < before


@pytest.fixture
def version_9(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    with store_at_version(db_url, 9, monkeypatch) as old:
        yield old


def test_version_10_marks_the_rollups_stale(version_9: Store, db_url: str) -> None:
    ms = metrics(version_9)
    with ms.write_transaction() as cur:
        for width in (60, 300, 3_600, 86_400):
            ms._q(
                cur,
                "INSERT INTO metric_rollups (series_id, level, bucket, n, total, lo, hi) "
                "VALUES (7, :w, :b, 1, 1.0, 1.0, 1.0)",
                {"w": width, "b": T0},
            )
    version_9.close()
    store = open_store(db_url)
    try:
        assert store.migrate() == schema_mod.LATEST
        with metrics(store).reader() as cur:
            metrics(store)._q(cur, "SELECT series_id, level, bucket FROM metric_stale ORDER BY 2")
            assert [tuple(r) for r in cur.fetchall()] == [(7, w, T0) for w in CELL_LEVELS]
    finally:
        store.close()


def test_the_api_answers_percentiles_from_the_cells(client: TestClient) -> None:
    name = f"lat{next(_names)}"
    body = points(name, 2_000, seed=6)
    assert client.post("/api/v1/metrics/points", json=body).status_code == 200
    query = {
        "metric": name,
        "start": "2025-11-20T00:00:00Z",
        "end": "2025-11-22T00:00:00Z",
        "step": "1h",
        "aggregation": "p95",
        "group_by": ["region"],
    }
    stale = client.post("/api/v1/metrics/query", json=query).json()
    svc = client.app.state.services  # type: ignore[attr-defined]
    assert svc.metric_cells is not None
    client.portal.call(svc.metric_cells.refresh)  # type: ignore[union-attr]
    assert svc.metric_cells.stale_metrics == 0
    fresh = client.post("/api/v1/metrics/query", json=query).json()
    assert fresh == stale
    tags = [s["tags"] for s in fresh["series"]]
    assert tags == [{"region": "eu"}, {"region": "us"}, {"region": None}]
    assert len(fresh["series"][0]["points"]) == 48
    # A filter on the grouping tag keeps whole groups: the cells still answer.
    filtered = {**query, "filters": [{"tag": "region", "value": "eu"}]}
    got = client.post("/api/v1/metrics/query", json=filtered).json()
    assert got["series"] == fresh["series"][:1]
    # A filter on another tag: the bins answer, and agree with the cells of one group.
    other = {**query, "group_by": [], "filters": [{"tag": "region", "op": "in", "value": ["us"]}]}
    assert client.post("/api/v1/metrics/query", json=other).json()["series"] == [
        {"tags": {}, "points": fresh["series"][1]["points"]}
    ]
    # A step that is no level's: the bins answer, 2 h at a time.
    two = client.post("/api/v1/metrics/query", json={**query, "step": "2h"}).json()
    assert len(two["series"][0]["points"]) == 24
    scrape = client.get("/metrics").text
    assert "flowdeck_metric_percentiles_stale 0" in scrape
    assert "flowdeck_metric_percentile_buckets_total" in scrape
