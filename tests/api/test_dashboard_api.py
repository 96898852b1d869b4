"""The JSON twins the dashboard pages added: daily trends and a batch's DQ warnings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import as_json
from tests.conftest import T0, FixedClock, run


def post(client: TestClient, reports: list[dict[str, object]]) -> None:
    answer = client.post("/api/v1/runs", json=[as_json(r) for r in reports])
    assert answer.status_code == 200, answer.text


def test_trends_per_day_and_per_batch(client: TestClient, clock: FixedClock) -> None:
    # clock.now is T0 + 1 day; a batch per day on the last three days, one 40 days ago.
    day = timedelta(days=1)
    post(
        client,
        [
            run("a", batch_id="d0", started_at=T0 - day, ended_at=T0 - day + timedelta(hours=1)),
            run("b", batch_id="d0", status="FAILED", started_at=T0 - day, ended_at=T0 - day),
            run("a", batch_id="d1", started_at=T0, ended_at=T0 + timedelta(minutes=30)),
            run("b", batch_id="d1", rows_read=1000, rows_invalid=30, status="SUCCESS"),
            run(
                "a",
                batch_id="d2",
                env="dev",
                status="RUNNING",
                started_at=T0 + day / 2,
                ended_at=None,
            ),
            run("a", batch_id="old", started_at=T0 - 40 * day, ended_at=T0 - 40 * day),
        ],
    )
    body = client.get("/api/v1/trends", params={"since": "7d"}).json()
    assert body["truncated"] is False
    days = {d["day"]: d for d in body["days"]}
    assert len(days) == 8  # 7 days back and today
    assert days["2026-11-19"] == {
        "day": "2026-11-19",
        "batches": 1,
        "processes": 2,
        "succeeded": 1,
        "failed": 1,
        "dq_errors": 0,
        "rows_read": 2000,
        "success_rate": 0.5,
        "dq_error_rate": 0.0,
    }
    assert days["2026-11-20"]["dq_errors"] == 30
    # d1 and d2 (dev, still running, started at 13:00) count on the day they started.
    assert days["2026-11-20"]["batches"] == 2
    assert days["2026-11-20"]["dq_error_rate"] == 30 / 3000
    assert days["2026-11-20"]["success_rate"] == 1.0  # of the finished ones: d2 still runs
    assert days["2026-11-17"]["success_rate"] is None and days["2026-11-17"]["batches"] == 0
    durations = {b["batch_id"]: b["duration_s"] for b in body["batches"]}
    assert durations == {"d0": 3600.0, "d1": 1800.0, "d2": None}
    assert [b["batch_id"] for b in body["batches"]] == ["d0", "d1", "d2"]

    prod = client.get("/api/v1/trends", params={"since": "7d", "env": "prod"}).json()
    assert [b["batch_id"] for b in prod["batches"]] == ["d0", "d1"]
    month = client.get("/api/v1/trends", params={"since": "60d"}).json()
    assert "old" in {b["batch_id"] for b in month["batches"]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "lately"}, "since: must be a duration before now"),
        ({"since": "400d"}, "since: the window may span at most 366 days"),
        ({"since": "2d", "until": "3d"}, "until: must not be before since"),
    ],
)
def test_trends_bad_params(client: TestClient, params: dict[str, str], message: str) -> None:
    answer = client.get("/api/v1/trends", params=params)
    assert answer.status_code == 422
    assert answer.json()["message"].startswith(message)


def test_dq_lists_the_processes_over_one_percent_worst_first(client: TestClient) -> None:
    post(
        client,
        [
            run("clean", rows_read=1000, rows_invalid=10),  # exactly 1 %: not a warning
            run("bad", rows_read=1000, rows_invalid=50),
            run("worse", rows_read=1000, rows_invalid=300),
            run(
                "nothing_read", rows_read=0, rows_written=0, dq_errors=4
            ),  # errors with no rows read
            run("fine", rows_read=1000),
        ],
    )
    body = client.get("/api/v1/batches/b1/dq").json()
    assert body["total"] == 3
    assert body["batch"]["dq_warning_processes"] == 3
    assert [r["pipeline"] for r in body["items"]] == ["worse", "bad", "nothing_read"]
    page2 = client.get("/api/v1/batches/b1/dq", params={"page": 2, "page_size": 25}).json()
    assert page2["items"] == [] and page2["pages"] == 1


def test_dq_pages_through_many_warnings(client: TestClient) -> None:
    post(client, [run(f"p{i:03d}", rows_read=1000, rows_invalid=20 + i) for i in range(60)])
    first = client.get("/api/v1/batches/b1/dq", params={"page_size": 25}).json()
    last = client.get("/api/v1/batches/b1/dq", params={"page_size": 25, "page": 3}).json()
    assert first["total"] == 60 and first["pages"] == 3
    assert first["items"][0]["pipeline"] == "p059"
    assert [r["pipeline"] for r in last["items"]] == [f"p{i:03d}" for i in range(9, -1, -1)]


def test_dq_unknown_batch_and_bad_page_size(client: TestClient) -> None:
    assert client.get("/api/v1/batches/nope/dq").status_code == 404
    post(client, [run("a")])
    answer = client.get("/api/v1/batches/b1/dq", params={"page_size": 10})
    assert answer.status_code == 422
    assert answer.json()["message"] == "page_size: must be one of 25, 50, 100"


def test_openapi_describes_the_dashboard_twins(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/trends" in paths
    assert "/api/v1/batches/{batch_id}/dq" in paths
    schema = paths["/api/v1/trends"]["get"]["responses"]["200"]["content"]["application/json"]
    assert schema["schema"] == {"$ref": "#/components/schemas/Trends"}
    assert "/" not in paths and "/trends" not in paths  # pages stay out of the API
