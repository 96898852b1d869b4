"""WebSocket /api/v1/ws and resuming the change stream (WebSocket and SSE) from an event id."""

from __future__ import annotations

import http.client
import socket
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from flowdeck.events import EventBus
from tests.api.conftest import as_json
from tests.conftest import run
from tests.servers import threaded_server


def post(client: TestClient, *reports: dict[str, Any]) -> None:
    res = client.post("/api/v1/runs", json=[as_json(r) for r in reports])
    assert res.status_code == 200, res.text


def test_changes_are_filtered_and_carry_ids(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws?pipeline=load_sales&env=prod") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello"
        assert hello["filter"] == {"env": "prod", "pipeline": "load_sales"}
        assert hello["interval_s"] == 1
        post(client, run("load_stock", "b1"))
        post(client, run("load_sales", "b1"), run("load_sales", "b2", env="dev", run_id="x"))
        got = ws.receive_json()
    assert got["type"] == "changes"
    assert [r["run_id"] for r in got["runs"]] == ["b1:load_sales"]
    assert got["runs_count"] == 1 and not got["truncated"]
    assert [(b["batch_id"], b["total"]) for b in got["batches"]] == [("b1", 2)]
    assert got["id"] > hello["id"]


def test_resume_after_an_event_id_misses_nothing(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws?batch_id=b1") as ws:
        ws.receive_json()
        post(client, run("a", "b1"))
        first = ws.receive_json()
    assert [r["pipeline"] for r in first["runs"]] == ["a"]
    post(client, run("b", "b1"))  # while no one listens
    post(client, run("c", "b2"))
    with client.websocket_connect(f"/api/v1/ws?batch_id=b1&last_event_id={first['id']}") as ws:
        hello = ws.receive_json()
        assert hello["id"] == first["id"]
        again = ws.receive_json()  # the backlog, at once
    assert [r["pipeline"] for r in again["runs"]] == ["b"]
    assert again["id"] > first["id"]


def test_an_id_that_cannot_be_resumed_gets_resync(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/ws?last_event_id=12") as ws:
        assert ws.receive_json()["type"] == "hello"
        resync = ws.receive_json()
    assert resync["type"] == "resync"
    assert resync["reason"] == "cannot resume after event 12; reload"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("interval=2s", "interval: must be one of 1s, 5s, 30s, 1m (got '2s')"),
        ("last_event_id=abc", "last_event_id: must be a whole number (got 'abc')"),
        (
            "pipelin=x",
            "pipelin: is not a known parameter (use project, env, pipeline, "
            "batch_id, interval, last_event_id)",
        ),
        ("project=", "project: must be 1 to 200 characters"),
    ],
)
def test_a_bad_subscription_is_named(client: TestClient, query: str, message: str) -> None:
    with client.websocket_connect(f"/api/v1/ws?{query}") as ws:
        assert ws.receive_json() == {"type": "error", "message": message}
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008


def test_the_bus_replays_only_what_it_can() -> None:
    import asyncio

    async def scenario() -> None:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        start = bus.last_event_id
        for i in range(3):
            bus.deliver(({"run_id": str(i)},), ())
        await asyncio.sleep(0)
        assert bus.last_event_id == start + 3
        replay = bus.replay(start + 1)
        assert replay is not None
        assert [c.runs[0]["run_id"] for c in replay] == ["1", "2"]
        assert bus.replay(start + 3) == []
        assert bus.replay(start + 4) is None  # the future
        assert bus.replay(5) is None  # another process's id
        bus.resync_all()  # changes went missing (a lost LISTEN connection)
        await asyncio.sleep(0)
        assert bus.replay(start + 2) is None
        assert bus.replay(start + 3) is None

    asyncio.run(scenario())


def read_events(res: http.client.HTTPResponse, want: int) -> list[tuple[str, str, Any]]:
    """(id, event, data) of the next ``want`` events of an SSE response."""
    out: list[tuple[str, str, Any]] = []
    ident = kind = data = ""
    while len(out) < want:
        line = res.fp.readline().decode().rstrip("\r\n")
        if line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            out.append((ident, kind, orjson.loads(data)))
            kind = data = ""
    return out


def sse(
    base: str, last_event_id: str | None = None, query: str = ""
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """An SSE connection, once the server said it is subscribed."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=15)
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    conn.request(
        "GET", "/api/v1/stream?batch_id=b1" + (f"&{query}" if query else ""), headers=headers
    )
    res = conn.getresponse()
    assert res.status == 200
    while not res.fp.readline().startswith(b": connected"):
        pass
    return conn, res


def close(conn: http.client.HTTPConnection) -> None:
    if conn.sock is not None:
        conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()


def test_the_sse_stream_resumes_from_last_event_id(db_url: str) -> None:
    import httpx2

    with threaded_server(db_url) as base:
        conn, res = sse(base)
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("a", "b1"))).raise_for_status()
        (ident, kind, data), *_ = read_events(res, 1)
        close(conn)
        assert kind == "run" and data["runs"][0]["pipeline"] == "a"

        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("b", "b1"))).raise_for_status()
        conn, res = sse(base, ident)
        (next_id, kind, data), *_ = read_events(res, 1)  # the backlog, at once
        close(conn)
        assert (kind, data["runs"][0]["pipeline"]) == ("run", "b")
        assert int(next_id) > int(ident)

        conn, res = sse(base, "7")
        (_, kind, data), *_ = read_events(res, 1)
        close(conn)
        assert (kind, data["reason"]) == ("resync", "cannot resume after event 7; reload")


def test_over_a_real_socket(db_url: str) -> None:
    import httpx2
    from websockets.sync.client import connect

    with threaded_server(db_url) as base:
        url = base.replace("http://", "ws://") + "/api/v1/ws?pipeline=a"
        with connect(url, open_timeout=10) as ws:
            assert orjson.loads(ws.recv(timeout=10))["type"] == "hello"
            httpx2.post(f"{base}/api/v1/runs", json=as_json(run("a", "b1"))).raise_for_status()
            got = orjson.loads(ws.recv(timeout=10))
        assert [r["run_id"] for r in got["runs"]] == ["b1:a"]


def test_a_browsers_last_event_id_wins_over_the_pages_starting_point(db_url: str) -> None:
    """A page's stream URL names where it started; when the browser reconnects it also
    sends the last event it got, which is the newer one."""
    import httpx2

    with threaded_server(db_url) as base:
        conn, res = sse(base)
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("a", "b1"))).raise_for_status()
        *_, (first, _, _) = read_events(res, 2)  # its run and its batch
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("b", "b1"))).raise_for_status()
        *_, (second, _, _) = read_events(res, 2)
        close(conn)
        assert int(second) > int(first)
        httpx2.post(f"{base}/api/v1/runs", json=as_json(run("c", "b1"))).raise_for_status()
        conn, res = sse(base, second, query=f"last_event_id={first}")
        (_, kind, data), *_ = read_events(res, 1)
        close(conn)
        assert (kind, [r["pipeline"] for r in data["runs"]]) == ("run", ["c"])
