"""POST /api/v1/runs is answered before FastAPI (api/fastpath.py); the documented route
must answer every request the same way, good or bad."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from flowdeck.api import fastpath
from tests.api.conftest import MakeClient, as_json, services_of
from tests.conftest import run

URL = "/api/v1/runs"
JSON = {"content-type": "application/json"}
GZIP = JSON | {"content-encoding": "gzip"}
ONE = orjson.dumps(as_json(run("a")))

CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("one run", ONE, JSON),
    ("a list", orjson.dumps([as_json(run(f"p{i}")) for i in range(3)]), JSON),
    ("a JSON type with parameters", ONE, {"content-type": "application/json; charset=utf-8"}),
    ("gzip", gzip.compress(ONE), GZIP),
    ("an invalid field", orjson.dumps(as_json(run("a")) | {"rows_read": -1}), JSON),
    ("not JSON", b"{nope", JSON),
    ("an empty body", b"  ", JSON),
    ("another content type", ONE, {"content-type": "text/plain"}),
    ("no content type", ONE, {}),
    ("another encoding", ONE, JSON | {"content-encoding": "br"}),
    ("bad gzip", b"\x1f\x8bnot gzip", GZIP),
    ("over the body limit", b"[" + b" " * 3000 + b"]", JSON),
    ("over the limit once inflated", gzip.compress(b"[" + b" " * 3000 + b"]"), GZIP),
    ("too many runs", orjson.dumps([as_json(run(f"q{i}")) for i in range(6)]), JSON),
]


def answer(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, str, Any]:
    res = client.post(URL, content=body, headers=headers)
    return res.status_code, res.headers["content-type"], res.json()


@pytest.mark.parametrize(("case", "body", "headers"), CASES, ids=[c[0] for c in CASES])
def test_the_route_and_the_fast_path_answer_alike(
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    client = make_client(max_body_bytes=2048, max_runs_per_request=5)
    with monkeypatch.context() as m:
        m.setattr(fastpath, "PATH", "/not-taken")  # FastAPI's route answers
        by_route = answer(client, body, headers)
    by_front = answer(client, body, headers)
    assert by_front == by_route
    assert by_front[1] == "application/json"


EVENTS = Path(__file__).parents[1] / "lineage" / "events"
START = orjson.loads((EVENTS / "airflow_retail_daily.jsonl").read_text().splitlines()[0])
LINEAGE_CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("an event", orjson.dumps(START), JSON),
    ("a list of events", orjson.dumps([START, START]), JSON),
    ("gzip", gzip.compress(orjson.dumps(START)), GZIP),
    ("an invalid event", orjson.dumps(START | {"eventTime": "yesterday"}), JSON),
    ("not JSON", b"{nope", JSON),
    ("another content type", orjson.dumps(START), {"content-type": "text/plain"}),
    ("over the body limit", b"[" + b" " * 3000 + b"]", JSON),
    ("no key", orjson.dumps(START), JSON | {"x-keyed": "1"}),
    ("a wrong key", orjson.dumps(START), JSON | {"x-keyed": "1", "authorization": "Bearer no"}),
    ("the key", orjson.dumps(START), JSON | {"x-keyed": "1", "authorization": "Bearer k1"}),
]


@pytest.mark.parametrize(
    ("case", "body", "headers"), LINEAGE_CASES, ids=[c[0] for c in LINEAGE_CASES]
)
def test_lineage_by_the_route_and_the_fast_path_alike(
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    headers = dict(headers)  # (the case's own dict serves both backends: not popped in place)
    if headers.pop("x-keyed", None):
        monkeypatch.setenv("FLOWDECK_LINEAGE_API_KEYS", "k0,k1")
    client = make_client(max_body_bytes=2048)

    def answer(query: str = "") -> tuple[int, dict[str, str], Any]:
        res = client.post("/api/v1/lineage" + query, content=body, headers=headers)
        kept = {k: v for k, v in res.headers.items() if k in ("content-type", "www-authenticate")}
        return res.status_code, kept, res.json()

    queries = ["", "?env=prod", "?env=prod&project=retail", "?env=", "?env=a&env=b", "?x=1"]
    with monkeypatch.context() as m:
        m.setattr(fastpath, "LINEAGE", "/not-taken")  # FastAPI's route answers
        by_route = [answer(q) for q in queries]
    assert [answer(q) for q in queries] == by_route


def test_a_failure_is_a_500_and_the_server_goes_on(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(body: bytes, svc: object) -> dict[str, Any]:
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(fastpath, "ingest", broken)
        res = client.post(URL, content=ONE, headers=JSON)
    assert res.status_code == 500
    assert res.json() == {"message": "internal server error"}
    assert client.post(URL, content=ONE, headers=JSON).status_code == 200
    assert services_of(client).store.count_runs() == 1


def test_other_requests_still_reach_fastapi(client: TestClient) -> None:
    assert client.get(URL + "/nope").status_code == 404
    assert client.put(URL, content=ONE, headers=JSON).status_code == 405


def test_lineage_runs_are_stored_alike(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def post(run_id: str) -> dict[str, Any]:
        event = START | {"run": START["run"] | {"runId": run_id}}
        res = client.post("/api/v1/lineage?env=qa&project=retail", json=event)
        assert res.status_code == 200, res.text
        got: dict[str, Any] = client.get(f"/api/v1/runs/{run_id}?history=0").json()
        return {k: v for k, v in got.items() if k not in ("run_id", "batch_id", "history")}

    with monkeypatch.context() as m:
        m.setattr(fastpath, "LINEAGE", "/not-taken")
        by_route = post("01935a1e-0000-7000-8000-000000000001")
    assert by_route["project"] == "retail"
    assert post("01935a1e-0000-7000-8000-000000000002") == by_route
