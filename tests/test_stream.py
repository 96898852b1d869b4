"""GET /api/v1/stream over a real socket: events after commits, coalescing, disconnects."""

from __future__ import annotations

import http.client
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest

from tests.api.conftest import as_json
from tests.conftest import reset_postgres, run
from tests.servers import threaded_server

Event = tuple[str, Any]


@pytest.fixture
def base(db_url: str) -> Iterator[str]:
    with threaded_server(db_url) as url:
        yield url


@contextmanager
def subscribed(url: str) -> Iterator[queue.Queue[Event]]:
    """Listen to the stream in a thread; yields once the server has said it is connected.
    Leaving shuts the socket down, which is what a browser tab closing does."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    conn.request("GET", f"{parts.path}?{parts.query}", headers={"Accept": "text/event-stream"})
    res = conn.getresponse()
    assert res.status == 200
    assert res.getheader("content-type", "").startswith("text/event-stream")
    events: queue.Queue[Event] = queue.Queue()
    ready = threading.Event()

    def listen() -> None:
        kind, data = "", ""
        try:
            for raw in iter(res.fp.readline, b""):
                line = raw.decode().rstrip("\r\n")
                if line.startswith(": connected"):
                    ready.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and kind:
                    events.put((kind, orjson.loads(data)))
                    kind, data = "", ""
        except (OSError, ValueError):
            pass  # the test shut the socket

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(10), "the stream never said it was connected"
    try:
        yield events
    finally:
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        thread.join(5)


def collect(events: queue.Queue[Event], until: float, want_runs: set[str]) -> list[Event]:
    got: list[Event] = []
    seen: set[str] = set()
    while time.monotonic() < until and not want_runs <= seen:
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            continue
        got.append(event)
        if event[0] == "run":
            seen |= {r["run_id"] for r in event[1]["runs"]}
    # The batch events of the same flush follow the run event.
    time.sleep(0.3)
    while not events.empty():
        got.append(events.get_nowait())
    return got


def test_an_event_follows_a_post(base: str) -> None:
    with subscribed(f"{base}/api/v1/stream") as events:
        res = httpx2.post(
            f"{base}/api/v1/runs", json=as_json(run("a", status="RUNNING", ended_at=None))
        )
        assert res.status_code == 200
        got = collect(events, time.monotonic() + 2, {"b1:a"})
    kinds = [k for k, _ in got]
    assert "run" in kinds and "batch" in kinds
    run_event = next(d for k, d in got if k == "run")
    assert run_event["runs"][0] == {
        "run_id": "b1:a",
        "project": "default",
        "pipeline": "a",
        "batch_id": "b1",
        "env": "prod",
        "status": "RUNNING",
    }
    batch = next(d for k, d in got if k == "batch")
    assert (batch["batch_id"], batch["running"], batch["health"]) == ("b1", 1, "red")


def test_bursts_are_coalesced(base: str) -> None:
    names = {f"b1:p{i}" for i in range(40)}
    with subscribed(f"{base}/api/v1/stream") as events, httpx2.Client() as client:
        for i in range(40):
            client.post(f"{base}/api/v1/runs", json=as_json(run(f"p{i}")))
        got = collect(events, time.monotonic() + 5, names)
    run_events = [d for k, d in got if k == "run"]
    assert {r["run_id"] for d in run_events for r in d["runs"]} == names
    assert len(run_events) < 40


def test_filters_by_batch(base: str) -> None:
    with subscribed(f"{base}/api/v1/stream?batch_id=b2") as events:
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("a", batch_id="b1")))
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("a", batch_id="b2")))
        got = collect(events, time.monotonic() + 3, {"b2:a"})
    run_ids = {r["run_id"] for k, d in got if k == "run" for r in d["runs"]}
    assert run_ids == {"b2:a"}
    assert {d["batch_id"] for k, d in got if k == "batch"} == {"b2"}


def test_disconnected_clients_are_let_go(base: str) -> None:
    with subscribed(f"{base}/api/v1/stream"):
        assert httpx2.get(f"{base}/healthz").json()["stream_clients"] == 1
    deadline = time.monotonic() + 5
    while httpx2.get(f"{base}/healthz").json()["stream_clients"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx2.get(f"{base}/healthz").json()["stream_clients"] == 0
    assert httpx2.post(f"{base}/api/v1/runs", json=as_json(run("b"))).status_code == 200


@pytest.mark.postgres
def test_every_replica_streams_every_change(pg_server_url: str) -> None:
    reset_postgres(pg_server_url)
    with (
        threaded_server(pg_server_url) as a,
        threaded_server(pg_server_url) as b,
        subscribed(f"{a}/api/v1/stream") as events,
    ):
        assert httpx2.post(f"{b}/api/v1/runs", json=as_json(run("x"))).status_code == 200
        got = collect(events, time.monotonic() + 3, {"b1:x"})
    assert {r["run_id"] for k, d in got if k == "run" for r in d["runs"]} == {"b1:x"}
    assert [d["total"] for k, d in got if k == "batch"] == [1]


def test_notify_payloads_stay_under_the_limit() -> None:
    from flowdeck.pg_events import MAX_PAYLOAD, payloads

    runs = tuple({"run_id": f"r{i}" * 5, "status": "SUCCESS"} for i in range(3000))
    batches = tuple({"batch_id": f"b{i}", "total": i} for i in range(200))
    messages = payloads(runs, batches)
    decoded = [orjson.loads(m) for m in messages]
    assert all(len(m.encode()) < MAX_PAYLOAD for m in messages)
    assert sum(len(d["r"]) for d in decoded) == 500  # capped: clients reload for more
    assert sum(len(d["b"]) for d in decoded) == 200


def wait_for(events: queue.Queue[Event], kind: str, seconds: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got_kind, data = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if got_kind == kind:
            return dict(data)
    return None


def test_metric_points_are_announced_to_who_asks(base: str) -> None:
    point = {"name": "queue.depth", "time": time.time() - 5, "value": 3, "tags": {"q": "a"}}
    with subscribed(f"{base}/api/v1/stream?topics=metric") as events:
        res = httpx2.post(f"{base}/api/v1/metrics/points", json=[point])
        assert res.status_code == 200, res.text
        news = wait_for(events, "metric", 5)
    assert news == {"count": 1, "names": ["queue.depth"]}
    # The default topics stay run, batch and alert.
    with subscribed(f"{base}/api/v1/stream") as events:
        assert httpx2.post(f"{base}/api/v1/metrics/points", json=[point]).status_code == 200
        assert wait_for(events, "metric", 1) is None


def test_an_unknown_topic_is_named(base: str) -> None:
    res = httpx2.get(f"{base}/api/v1/stream?topics=run,metrics")
    assert res.status_code == 422
    assert "unknown topic 'metrics': use run, batch, alert, metric" in res.text


@pytest.mark.postgres
def test_every_replica_hears_of_metric_points(pg_server_url: str) -> None:
    reset_postgres(pg_server_url)
    point = {"name": "api.latency_ms", "time": time.time() - 5, "value": 12.5}
    with (
        threaded_server(pg_server_url) as a,
        threaded_server(pg_server_url) as b,
        subscribed(f"{a}/api/v1/stream?topics=metric") as events,
    ):
        assert httpx2.post(f"{b}/api/v1/metrics/points", json=[point]).status_code == 200
        news = wait_for(events, "metric", 5)
    assert news == {"count": 1, "names": ["api.latency_ms"]}
