"""The batch dashboard's questions through the API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import as_json
from tests.conftest import T0, FixedClock, run


@pytest.fixture
def estate(client: TestClient) -> TestClient:
    """Two prod batches and a dev one; b2 is the latest, with every status in it."""
    reports = [
        run(
            f"p{i:02d}",
            batch_id="b1",
            started_at=T0 - timedelta(days=1),
            ended_at=T0 - timedelta(days=1) + timedelta(minutes=i + 1),
        )
        for i in range(30)
    ]
    reports += [
        run("load", batch_id="b2", rows_read=1000, rows_invalid=50),
        run(
            "scd",
            batch_id="b2",
            status="FAILED",
            error_message="boom",
            custom_stats={"scd2_new": 5, "scd2_changed": 7},
        ),
        run("slow", batch_id="b2", status="RUNNING", ended_at=None),
        run("later", batch_id="b2", status="PENDING", started_at=None, ended_at=None),
        run(
            "x",
            batch_id="d1",
            env="dev",
            started_at=T0 - timedelta(days=20),
            ended_at=T0 - timedelta(days=20) + timedelta(minutes=1),
        ),
    ]
    assert client.post("/api/v1/runs", json=[as_json(r) for r in reports]).status_code == 200
    return client


def test_batch_list_newest_first_with_counts(estate: TestClient) -> None:
    items = estate.get("/api/v1/batches").json()["items"]
    assert [b["batch_id"] for b in items] == ["b2", "b1"]
    b2 = items[0]
    assert (b2["total"], b2["succeeded"], b2["failed"], b2["running"], b2["pending"]) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert b2["ended_at"] is None  # still open
    assert b2["env"] == "prod" and b2["started_at"] == "2026-11-20T01:00:00Z"
    assert items[1]["health"] == "green" and items[1]["ended_at"] is not None


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("since=30d", ["b2", "b1", "d1"]),
        ("since=30d&env=dev", ["d1"]),
        ("since=24h", ["b2"]),
        ("since=2026-10-01T00:00:00Z&until=2026-11-19T00:00:00Z", ["d1"]),
        ("since=2026-10-01T00:00:00Z&until=2026-11-19T12:00:00Z", ["b1", "d1"]),
        ("since=30d&project=other", []),
    ],
)
def test_batch_list_filters(estate: TestClient, query: str, ids: list[str]) -> None:
    items = estate.get(f"/api/v1/batches?{query}").json()["items"]
    assert [b["batch_id"] for b in items] == ids


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "since=yesterday",
            "since: must be a duration before now such as 24h, 7d or 30d, or an ISO-8601 time "
            "with a zone offset such as 2026-01-31T00:00:00Z; got 'yesterday'",
        ),
        (
            "until=2026-11-01T00:00:00",
            "until: must be a duration before now such as 24h, 7d or "
            "30d, or an ISO-8601 time with a zone offset such as 2026-01-31T00:00:00Z; got "
            "'2026-11-01T00:00:00'",
        ),
        ("limit=0", "limit: Input should be greater than or equal to 1"),
    ],
)
def test_batch_list_bad_params(estate: TestClient, query: str, message: str) -> None:
    res = estate.get(f"/api/v1/batches?{query}")
    assert res.status_code == 422
    assert res.json()["message"] == message


def test_batch_summary(estate: TestClient) -> None:
    b2 = estate.get("/api/v1/batches/b2").json()
    assert b2["success_rate"] == 0.25 and b2["health"] == "red"
    assert b2["dq_errors"] == 50 and b2["dq_warning_processes"] == 1
    assert b2["dq_error_rate"] == pytest.approx(50 / 4000)
    assert b2["rows"] == {"read": 4000, "written": 3960, "invalid": 50, "inserted": 5, "updated": 7}
    assert b2["health_reason"] == "1 process failed, 2 still running or pending"
    b1 = estate.get("/api/v1/batches/b1").json()
    assert b1["health"] == "green" and b1["duration_s"] == 30 * 60
    assert b1["health_reason"] == "every process succeeded"
    listed = {b["batch_id"]: b for b in estate.get("/api/v1/batches?since=30d").json()["items"]}
    assert listed["b2"]["health_reason"] == b2["health_reason"]


def test_yellow_batch(client: TestClient) -> None:
    reports = [run(f"p{i}") for i in range(9)] + [run("p9", status="RUNNING", ended_at=None)]
    client.post("/api/v1/runs", json=[as_json(r) for r in reports])
    assert client.get("/api/v1/batches/b1").json()["health"] == "yellow"


def test_unknown_batch_and_run_are_404(estate: TestClient) -> None:
    for path in (
        "/api/v1/batches/nope",
        "/api/v1/batches/nope/runs",
        "/api/v1/batches/nope/runs.csv",
    ):
        res = estate.get(path)
        assert (res.status_code, res.json()["message"]) == (404, "batch 'nope' not found")
    res = estate.get("/api/v1/runs/nope")
    assert (res.status_code, res.json()["message"]) == (404, "run 'nope' not found")


@pytest.mark.parametrize("batch_id", ["2026/11/23", "nightly/runs/x", "a/dq/b", "/lead"])
def test_a_batch_id_with_slashes_is_read_on_every_path(client: TestClient, batch_id: str) -> None:
    reports = [
        run("load", batch_id=batch_id, rows_read=1000, dq_errors=50),
        run("stock", batch_id=batch_id, status="FAILED", error_message="boom"),
        run("load", batch_id="plain"),
    ]
    assert client.post("/api/v1/runs", json=[as_json(r) for r in reports]).status_code == 200
    quoted = quote(batch_id, safe="")
    for spelled in (quoted, batch_id):  # %2F is decoded before routing: the same path
        base = f"/api/v1/batches/{spelled}"
        summary = client.get(base)
        assert summary.status_code == 200, (base, summary.text)
        assert (summary.json()["batch_id"], summary.json()["total"]) == (batch_id, 2)
        page = client.get(f"{base}/runs?sort=pipeline").json()
        assert [r["pipeline"] for r in page["items"]] == ["load", "stock"]
        rows = list(csv.DictReader(io.StringIO(client.get(f"{base}/runs.csv").text)))
        assert [r["batch_id"] for r in rows] == [batch_id, batch_id]
        dq = client.get(f"{base}/dq").json()
        assert [r["pipeline"] for r in dq["items"]] == ["load"]
    view = client.get(f"/batches/{quoted}/dq")
    assert view.status_code == 200 and f"DQ errors in batch {batch_id}" in view.text
    dashboard = client.get(f"/?batch={quoted}", headers={"accept": "text/html"}).text
    assert f'href="/api/v1/batches/{quoted}/runs.csv?' in dashboard
    assert f'href="/batches/{quoted}/dq?' in dashboard
    assert client.get("/api/v1/batches/plain/runs").json()["total"] == 1
    res = client.get(f"/api/v1/batches/{quote(batch_id + '/more', safe='')}/runs")
    assert res.json()["message"] == f"batch {batch_id + '/more'!r} not found"


def test_a_batch_id_in_two_projects_needs_the_project(client: TestClient) -> None:
    client.post(
        "/api/v1/runs",
        json=[
            as_json(run("a", project="x", run_id="1")),
            as_json(run("a", project="y", run_id="2")),
        ],
    )
    res = client.get("/api/v1/batches/b1")
    assert res.status_code == 422
    assert res.json()["message"] == "project: batch 'b1' exists in projects x, y; name one"
    assert client.get("/api/v1/batches/b1?project=y").json()["project"] == "y"


def test_process_list_pages_sorts_filters(estate: TestClient) -> None:
    page = estate.get("/api/v1/batches/b1/runs?page_size=25&page=2&sort=duration_s&order=desc")
    body = page.json()
    assert (body["total"], body["pages"], body["page"], body["page_size"]) == (30, 2, 2, 25)
    assert [r["pipeline"] for r in body["items"]] == [f"p{i:02d}" for i in range(4, -1, -1)]
    failed = estate.get("/api/v1/batches/b2/runs?status=failed,running").json()
    assert sorted(r["pipeline"] for r in failed["items"]) == ["scd", "slow"]
    item = failed["items"][0]
    assert item["error_message"] == "boom" and item["rows_updated"] == 7


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("page_size=10", "page_size: must be one of 25, 50, 100"),
        (
            "sort=colour",
            "sort: unknown column 'colour'; use one of run_id, project, pipeline, "
            "batch_id, env, status, started_at, ended_at, duration_s, rows_read, rows_written, "
            "rows_invalid, rows_inserted, rows_updated, dq_errors, read_throughput, "
            "write_throughput, error_message, created_at, updated_at, dq_error_rate",
        ),
        ("order=up", "order: Input should be 'asc' or 'desc'"),
        ("status=DONE", "status: unknown status 'DONE'; use FAILED, PENDING, RUNNING, SUCCESS"),
        ("page=0", "page: Input should be greater than or equal to 1"),
    ],
)
def test_process_list_bad_params(estate: TestClient, query: str, message: str) -> None:
    res = estate.get(f"/api/v1/batches/b2/runs?{query}")
    assert res.status_code == 422
    assert res.json()["message"] == message


def test_csv_export_has_the_same_rows(estate: TestClient) -> None:
    res = estate.get("/api/v1/batches/b1/runs.csv?sort=duration_s&order=desc&status=SUCCESS")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    assert res.headers["content-disposition"] == 'attachment; filename="batch-b1-runs.csv"'
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert len(rows) == 30
    assert rows[0]["pipeline"] == "p29" and rows[0]["duration_s"] == "1800.0"
    assert rows[0]["custom_stats"] == "{}" and rows[0]["started_at"] == "2026-11-19T01:00:00+00:00"


def test_run_detail_with_history(estate: TestClient) -> None:
    estate.post(
        "/api/v1/runs",
        json=[
            as_json(
                run(
                    "load",
                    batch_id=f"h{i}",
                    started_at=T0 - timedelta(days=i + 2),
                    ended_at=T0 - timedelta(days=i + 2) + timedelta(minutes=1),
                )
            )
            for i in range(5)
        ],
    )
    got = estate.get("/api/v1/runs/b2:load?history=3").json()
    assert got["run_id"] == "b2:load" and got["dq_error_rate"] == 0.05
    assert [h["batch_id"] for h in got["history"]] == ["b2", "h0", "h1"]


def test_pipelines(estate: TestClient, clock: FixedClock) -> None:
    items = {p["pipeline"]: p for p in estate.get("/api/v1/pipelines?env=prod").json()["items"]}
    assert items["scd"]["consecutive_failures"] == 1
    assert items["scd"]["last_success_at"] is None
    load = items["load"]
    assert load["last_status"] == "SUCCESS"
    assert (
        load["seconds_since_success"] == (clock.now - (T0 + timedelta(minutes=10))).total_seconds()
    )


def test_openapi_describes_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/runs",
        "/api/v1/batches",
        "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/runs",
        "/api/v1/batches/{batch_id}/runs.csv",
        "/api/v1/runs/{run_id}",
        "/api/v1/pipelines",
        "/api/v1/stream",
    ):
        assert path in spec["paths"], path
    assert "RunIn" in spec["components"]["schemas"]
    body = spec["paths"]["/api/v1/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["oneOf"][0] == {"$ref": "#/components/schemas/RunIn"}


def test_healthz(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["writer"]["queue_depth"] == 0
