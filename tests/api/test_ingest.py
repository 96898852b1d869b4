"""POST /api/v1/runs: acceptance, idempotency, and every way of getting it wrong."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from tests.api.conftest import MakeClient, as_json, services_of
from tests.conftest import run

URL = "/api/v1/runs"


def runs_stored(client: TestClient) -> int:
    return services_of(client).store.count_runs()


def test_one_run_or_a_list(client: TestClient) -> None:
    one = client.post(URL, json=as_json(run("a")))
    assert one.status_code == 200
    assert one.json() == {"accepted": 1, "run_ids": ["b1:a"]}
    many = client.post(URL, json=[as_json(run(f"p{i}")) for i in range(3)])
    assert many.json()["accepted"] == 3
    assert runs_stored(client) == 4


def test_run_id_is_generated_and_batch_id_may_be_an_int(client: TestClient) -> None:
    body = as_json(run("a", batch_id=None, run_id=None)) | {"batch_id": 20261123}
    res = client.post(URL, json=body)
    assert res.status_code == 200
    run_id = res.json()["run_ids"][0]
    got = client.get(f"/api/v1/runs/{run_id}").json()
    assert got["batch_id"] == "20261123"


def test_reposting_is_idempotent(client: TestClient) -> None:
    body = [as_json(run(f"p{i}")) for i in range(5)]
    client.post(URL, json=body)
    before = client.get("/api/v1/batches/b1").json()
    again = client.post(URL, json=body)
    assert again.json()["accepted"] == 5
    after = client.get("/api/v1/batches/b1").json()
    assert runs_stored(client) == 5
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }


def test_timestamps_are_stored_in_utc(client: TestClient) -> None:
    body = as_json(run("a")) | {
        "started_at": "2026-11-20T03:00:00+02:00",
        "ended_at": "2026-11-20T01:10:00Z",
    }
    client.post(URL, json=body)
    got = client.get("/api/v1/runs/b1:a").json()
    assert got["started_at"] == "2026-11-20T01:00:00Z"
    assert got["duration_s"] == 600


BAD: list[tuple[Any, str]] = [
    (
        [{"pipeline": "a", "started_at": "2026-11-20T01:00:00"}],
        "runs[0].started_at: must include a time zone offset (e.g. 2026-01-31T02:00:00Z)",
    ),
    (
        {"pipeline": "a", "rows_read": -1},
        "run.rows_read: Input should be greater than or equal to 0",
    ),
    (
        {"pipeline": "a", "rows_read": "many"},
        "run.rows_read: Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        {"pipeline": "a", "status": "DONE"},
        "run.status: Input should be 'PENDING', 'RUNNING', 'SUCCESS' or 'FAILED'",
    ),
    ({"pipeline": "a", "colour": "red"}, "run.colour: is not a known field"),
    ({"pipeline": "a", "batch_id": [1]}, "run.batch_id: must be a string or an integer"),
    ({"pipeline": ""}, "run.pipeline: String should have at least 1 character"),
    ({"pipeline": "a", "labels": {"team": 3}}, "run.labels.team: Input should be a valid string"),
    (
        {"pipeline": "a", "custom_stats": [1]},
        "run.custom_stats: Input should be an object",
    ),
    (
        {"pipeline": "a", "started_at": "2026-11-20T02:00:00Z", "ended_at": "2026-11-20T01:00:00Z"},
        "run.ended_at: must not be before started_at",
    ),
    ({"run_id": "new"}, "run.pipeline: is required for a new run (run_id 'new' is not known)"),
    ([], "runs: must contain at least one run"),
    ("a string", "body: must be a run object or a list of run objects"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_invalid_input_names_the_field_and_rule(
    client: TestClient, body: Any, message: str
) -> None:
    res = client.post(URL, json=body)
    assert res.status_code == 422, res.text
    assert res.json()["message"] == message
    assert runs_stored(client) == 0


def test_one_bad_run_rejects_the_whole_request(client: TestClient) -> None:
    body = [as_json(run(f"p{i}")) for i in range(5)]
    body[3]["rows_written"] = -5
    body.append({"run_id": "ghost", "status": "SUCCESS"})
    res = client.post(URL, json=body)
    assert res.status_code == 422
    detail = res.json()["detail"]
    assert [d["loc"] for d in detail] == ["runs[3].rows_written"]
    assert runs_stored(client) == 0
    # …and the same without the shape error fails on the unknown run, still writing nothing.
    body[3]["rows_written"] = 5
    res = client.post(URL, json=body)
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == "runs[5].pipeline"
    assert runs_stored(client) == 0


def test_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=2000)
    body = [as_json(run(f"p{i}")) for i in range(20)]
    res = client.post(URL, json=body)
    assert res.status_code == 413
    assert res.json()["message"] == "request body is larger than the limit of 2000 bytes"
    # Chunked, with no Content-Length to trust, is cut off as well.
    chunks = iter([orjson.dumps(body)[:1500], orjson.dumps(body)[1500:]])
    res = client.post(URL, content=chunks, headers={"content-type": "application/json"})
    assert res.status_code == 413
    assert runs_stored(client) == 0


def test_too_many_runs_is_413(make_client: MakeClient) -> None:
    client = make_client(max_runs_per_request=3)
    res = client.post(URL, json=[as_json(run(f"p{i}")) for i in range(4)])
    assert res.status_code == 413
    assert res.json()["message"] == "runs: at most 3 runs per request, got 4"


def test_gzip_bodies_are_accepted_and_bombs_are_not(make_client: MakeClient) -> None:
    client = make_client(max_body_bytes=5000)
    body = gzip.compress(orjson.dumps([as_json(run("a"))]))
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert client.post(URL, content=body, headers=headers).status_code == 200
    bomb = gzip.compress(b"[" + b" " * 100_000 + b"]")
    res = client.post(URL, content=bomb, headers=headers)
    assert res.status_code == 413


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        (
            {"content-type": "text/csv"},
            415,
            "Content-Type must be application/json, got 'text/csv'",
        ),
        ({}, 415, "Content-Type must be application/json, got 'nothing'"),
        (
            {"content-type": "application/json", "content-encoding": "br"},
            415,
            "Content-Encoding 'br' is not supported (use gzip)",
        ),
    ],
)
def test_wrong_content_type(
    client: TestClient, headers: dict[str, str], status: int, message: str
) -> None:
    res = client.post(URL, content=b'{"pipeline": "a"}', headers=headers)
    assert (res.status_code, res.json()["message"]) == (status, message)


def test_broken_json_is_400(client: TestClient) -> None:
    res = client.post(URL, content=b'{"pipeline": ', headers={"content-type": "application/json"})
    assert res.status_code == 400
    assert res.json()["message"].startswith("body is not valid JSON")


def test_the_server_keeps_serving_after_bad_input(client: TestClient) -> None:
    for body, _ in BAD:
        client.post(URL, json=body)
    client.post(URL, content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post(URL, json=as_json(run("a"))).status_code == 200


# -- a large list of new runs goes in as columns (DuckDB); the answers stay the same ------


def _bulk(n: int, prefix: str = "bulk") -> list[dict[str, Any]]:
    return [
        {
            "run_id": f"{prefix}-{i}",
            "pipeline": f"load_{i % 9}",
            "batch_id": 77,
            "env": "prod",
            "status": "SUCCESS" if i % 10 else "FAILED",
            "started_at": "2026-01-05T02:00:00Z",
            "ended_at": "2026-01-05T02:10:00+00:00",
            "rows_read": 1000 + i,
            "labels": {"team": "core", "padding": "x" * 100},
        }
        for i in range(n)
    ]


def test_a_large_list_of_new_runs_is_stored_like_any_other(client: TestClient) -> None:
    runs = _bulk(600)
    first = client.post("/api/v1/runs", json=runs)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 600
    assert first.json()["run_ids"][:2] == ["bulk-0", "bulk-1"]
    batch = client.get("/api/v1/batches/77").json()
    assert (batch["total"], batch["succeeded"], batch["failed"]) == (600, 540, 60)
    detail = client.get("/api/v1/runs/bulk-5").json()
    assert detail["duration_s"] == 600.0 and detail["labels"]["team"] == "core"
    # The same body again: every run is known now, so it is merged (and changes nothing).
    again = client.post("/api/v1/runs", json=runs)
    assert again.status_code == 200 and again.json()["accepted"] == 600
    assert client.get("/api/v1/batches/77").json()["total"] == 600


def test_a_large_list_with_one_bad_run_is_rejected_whole(client: TestClient) -> None:
    runs = _bulk(600, prefix="bad")
    runs[321]["started_at"] = "2026-01-05T02:00:00"
    response = client.post("/api/v1/runs", json=runs)
    assert response.status_code == 422
    assert "runs[321].started_at" in response.text
    assert "time zone" in response.text
    assert client.get("/api/v1/runs/bad-0").status_code == 404
