"""POST /api/v1/runs is answered before FastAPI (api/fastpath.py); the documented route
must answer every request the same way, good or bad."""

from __future__ import annotations

import gzip
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
