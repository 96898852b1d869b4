"""The SDK's metric points (gauge, counter, histogram) against a real server, a server that
is down, and one that refuses a series over its tag-combination limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from flowdeck.sdk import Client
from tests.servers import free_port, server_on

T = 1_763_596_800  # 2025-11-20T00:00:00Z


@pytest.fixture
def duck(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path / 'flowdeck.duckdb'}"


def query(base: str, metric: str, aggregation: str, **extra: Any) -> list[dict[str, Any]]:
    body = {
        "metric": metric,
        "aggregation": aggregation,
        "start": "2025-11-20T00:00:00Z",
        "end": "2025-11-21T00:00:00Z",
        "step": "1d",
        **extra,
    }
    answer = httpx2.post(f"{base}/api/v1/metrics/query", json=body)
    assert answer.status_code == 200, answer.text
    series: list[dict[str, Any]] = answer.json()["series"]
    return series


def values(series: list[dict[str, Any]]) -> dict[str, Any]:
    """The one bucket's value per group (groups named by their tag values)."""
    out = {}
    for s in series:
        assert len(s["points"]) == 1, s
        out[",".join(str(v) for v in s["tags"].values())] = s["points"][0][1]
    return out


@pytest.fixture
def base(duck: str) -> Iterator[str]:
    with server_on(free_port(), duck) as url:
        yield url


def test_points_arrive_and_query_back(base: str, tmp_path: Path) -> None:
    # A long interval: only the point count (or flush) sends.
    client = Client(
        base, spool_dir=tmp_path / "spool", metrics_interval=3600, metric_tags={"team": "ops"}
    )
    try:
        for i, depth in enumerate([5, 9, 7]):
            client.gauge("queue.depth", depth, tags={"queue": "orders"}, time=T + i * 60)
        client.gauge("queue.depth", 100, tags={"queue": "refunds"}, time=T + 30)
        for i in range(1000):
            client.counter("rows.loaded", 3, tags={"table": "sales"}, time=T + i / 100)
        client.counter("rows.loaded", tags={"table": "sales"}, time=datetime.fromtimestamp(T, UTC))
        for i in range(1, 1001):
            client.histogram("api.latency_ms", float(i), time=T + 3600 + i)
        assert client.metrics.buffered > 0
        assert client.flush(10)
        assert client.metrics.buffered == 0
    finally:
        client.close()
    assert values(query(base, "queue.depth", "max", group_by=["queue"])) == {
        "orders": 9,
        "refunds": 100,
    }
    orders = [{"tag": "queue", "value": "orders"}]
    assert values(query(base, "queue.depth", "avg", filters=orders)) == {"": 7}
    assert values(query(base, "queue.depth", "count", group_by=["team"])) == {"ops": 4}
    # Increments: the sum is the total; those of one second are one point.
    assert values(query(base, "rows.loaded", "sum")) == {"": 3001}
    assert values(query(base, "rows.loaded", "count")) == {"": 10}
    latency = values(query(base, "api.latency_ms", "p50")) | {
        "p99": values(query(base, "api.latency_ms", "p99"))[""],
        "n": values(query(base, "api.latency_ms", "count"))[""],
    }
    assert latency["n"] == 1000
    assert latency[""] == pytest.approx(500, rel=0.03)
    assert latency["p99"] == pytest.approx(990, rel=0.03)
    assert client.metrics.sender.sent == 4 + 10 + 1000
    assert client.metrics.spooled == 0


def test_the_point_count_and_the_timer_send_without_a_flush(base: str, tmp_path: Path) -> None:
    by_count = Client(
        base, spool_dir=tmp_path / "a", metrics_interval=3600, metrics_flush_points=50
    )
    by_time = Client(base, spool_dir=tmp_path / "b", metrics_interval=0.2)
    try:
        for i in range(50):
            by_count.gauge("cpu", i, time=T + i)
        by_time.gauge("mem", 1.5, time=T)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            by_count.metrics.sender.sent == 50 and by_time.metrics.sender.sent == 1
        ):
            time.sleep(0.05)
        assert (by_count.metrics.sender.sent, by_time.metrics.sender.sent) == (50, 1)
        assert values(query(base, "cpu", "count")) == {"": 50}
    finally:
        by_count.close()
        by_time.close()


def test_requests_stay_under_the_servers_point_limit(duck: str, tmp_path: Path) -> None:
    with server_on(free_port(), duck, metric_max_points_per_request=1000) as url:
        spool = tmp_path / "spool"
        client = Client(url, spool_dir=spool, metrics_interval=60, metrics_max_request_points=1000)
        for i in range(2500):
            client.gauge("big", i, time=T + i)
        for i in range(700):
            client.gauge("big", i, tags={"part": "two"}, time=T + i)
        assert client.flush(10)
        client.close()
        assert client.metrics.sender.dropped == 0  # a 413 would have dropped them
        assert values(query(url, "big", "count", group_by=["part"])) == {"None": 2500, "two": 700}


def test_down_server_spools_then_resends(duck: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens yet
    url = f"http://127.0.0.1:{port}"
    client = Client(url, spool_dir=tmp_path / "spool", backoff_start=0.2, backoff_max=0.5)
    started = time.perf_counter()
    for i in range(1000):
        client.counter("events", tags={"kind": "click"}, time=T + i)
    client.gauge("temperature", 21.5, time=T)
    assert time.perf_counter() - started < 0.5  # the pipeline did not wait for flowdeck
    assert client.flush(5)
    assert client.metrics.spooled == 1001
    assert client.spooled == 0  # the runs' spool is another folder

    with server_on(port, duck):
        deadline = time.monotonic() + 10
        while client.metrics.spooled and time.monotonic() < deadline:
            time.sleep(0.05)  # the client retries on its own, with backoff
        assert client.metrics.spooled == 0
        assert values(query(url, "events", "sum", group_by=["kind"])) == {"click": 1000}
        assert values(query(url, "temperature", "max")) == {"": 21.5}
    client.close()


def test_a_series_refused_with_422_is_dropped_and_logged_alone(
    duck: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with server_on(free_port(), duck, metric_max_series=2) as url:
        client = Client(url, spool_dir=tmp_path / "spool", metrics_interval=3600)
        with caplog.at_level(logging.ERROR, logger="flowdeck.sdk"):
            for host in ("a", "b", "c"):
                client.gauge("cpu", 0.5, tags={"host": host}, time=T)
            client.gauge("mem", 2.0, tags={"host": "c"}, time=T)
            assert client.flush(10)
        client.close()
        assert client.metrics.sender.dropped == 1
        assert client.metrics.spooled == 0
        assert values(query(url, "cpu", "count", group_by=["host"])) == {"a": 1, "b": 1}
        assert values(query(url, "mem", "count")) == {"": 1}
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert "flowdeck refused 1 metric series: HTTP 422" in refused[0]
    assert "over the limit of 2 per metric" in refused[0]


def test_nonsense_is_refused_at_the_call_and_nan_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client("http://127.0.0.1:9", spool_dir=tmp_path / "spool", metrics_interval=3600)
    try:
        with pytest.raises(ValueError, match=r"metric name 'runs\.count'.*reserved"):
            client.gauge("runs.count", 1)
        with pytest.raises(ValueError, match="metric name '1st' must be 1 to 200 characters"):
            client.gauge("1st", 1)
        with pytest.raises(ValueError, match="tag 'host' must have a text value"):
            client.gauge("cpu", 1, tags={"host": ""})
        with pytest.raises(ValueError, match="the value must be a number, got True"):
            client.histogram("cpu", True)
        with pytest.raises(ValueError, match="time must be a datetime with a time zone"):
            client.gauge("cpu", 1, time=datetime(2026, 1, 1))
        with caplog.at_level(logging.WARNING, logger="flowdeck.sdk"):
            client.gauge("ratio", float("nan"))
        assert client.metrics.skipped == 1
        assert client.metrics.buffered == 0
        assert "gauge 'ratio' got nan; not sent" in caplog.text
    finally:
        client.close(timeout=0)
