"""/api/v1/dashboards on both backends: create, read, replace (with the version check),
delete, export → import, and every 4xx with the field and the rule it names."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.dashboards.conftest import board, widget

API = "/api/v1/dashboards"


def create(client: TestClient, **extra: Any) -> dict[str, Any]:
    answer = client.post(API, json=board(**extra))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_read_list_update_delete(client: TestClient) -> None:
    created = create(client)
    assert created["version"] == 1
    assert created["title"] == "Ops"
    assert created["refresh"] == "5s"
    assert created["time_range"] == {"last": "7d", "start": None, "end": None}
    assert [w["id"] for w in created["widgets"]] == ["w1", "w2"]
    assert created["widgets"][0]["options"]["reduce"] == "last"  # defaults filled in

    got = client.get(f"{API}/{created['id']}").json()
    assert got == created
    listed = client.get(API).json()["items"]
    assert {"data-ops", "manager", created["id"]} == {d["id"] for d in listed}
    mine = next(d for d in listed if d["id"] == created["id"])
    assert mine["widgets"] == 2
    assert mine["url"] == f"/dashboards/{created['id']}"

    # What GET answered goes back with a change; the version moves on.
    got["title"] = "Ops, renamed"
    got["widgets"][0]["grid"] = {"x": 0, "y": 4, "w": 12, "h": 3}
    updated = client.put(f"{API}/{created['id']}", json=got)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["title"] == "Ops, renamed"
    assert client.get(f"{API}/{created['id']}").json()["widgets"][0]["grid"]["y"] == 4

    assert client.delete(f"{API}/{created['id']}").status_code == 204
    assert client.get(f"{API}/{created['id']}").status_code == 404


def test_put_with_a_stale_version_is_a_conflict(client: TestClient) -> None:
    created = create(client)
    first = {**created, "title": "first"}
    second = {**created, "title": "second"}
    assert client.put(f"{API}/{created['id']}", json=first).status_code == 200
    answer = client.put(f"{API}/{created['id']}", json=second)
    assert answer.status_code == 409
    assert answer.json()["message"] == (
        f"dashboard {created['id']!r} is at version 2, not 1: it was saved meanwhile; "
        "reload it and edit again"
    )
    assert client.get(f"{API}/{created['id']}").json()["title"] == "first"
    # Without a version the last write wins.
    del second["version"]
    assert client.put(f"{API}/{created['id']}", json=second).json()["version"] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"widgets": [widget("a", "sparkline")]},
            "widgets[0].type: must be one of line, bar, pie, heatmap, gauge, stat, table, "
            "alerts, batch_status; got 'sparkline'",
        ),
        ({"title": "  "}, "title: must not be blank"),
        ({"title": None}, "title: Input should be a valid string"),
        ({"refresh": "2s"}, "refresh: must be one of 1s, 5s, 30s, 1m, off; got '2s'"),
        (
            {"time_range": {"last": "2d"}},
            "time_range.last: must be one of 1h, 6h, 24h, 7d, 30d, 90d; got '2d'",
        ),
        (
            {"time_range": {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}},
            "time_range.end: must be after start",
        ),
        (
            {"time_range": {"last": "7d", "start": "2026-01-02T00:00:00Z"}},
            "time_range: give either last or start and end, not both",
        ),
        (
            {"widgets": [widget("a", x=8)]},
            "widgets[0].grid: x + w must be at most 12 (the grid's columns)",
        ),
        (
            {"widgets": [{**widget("a"), "grid": {"x": 0, "y": 0, "w": 0, "h": 4}}]},
            "widgets[0].grid.w: Input should be greater than or equal to 1",
        ),
        (
            {"widgets": [widget("a"), widget("b", x=3)]},
            "widgets[1].grid: overlaps widgets[0] ('a')",
        ),
        (
            {"widgets": [widget("a"), widget("a", y=4)]},
            "widgets[1].id: must be unique; widgets[0] has it",
        ),
        (
            {"widgets": [{**widget("a"), "query": None}]},
            "widgets[0].query: is required for a line widget",
        ),
        (
            {"widgets": [widget("a", "alerts", query={"metric": "runs.count"})]},
            "widgets[0].query: a alerts widget takes no query",
        ),
        (
            {"widgets": [widget("a", query={"metric": "runs.nope"})]},
            "widgets[0].query.metric: unknown run metric; one of runs.count, runs.dq_errors, "
            "runs.duration_s, runs.rows_invalid, runs.rows_read, runs.rows_written, "
            "runs.success_rate",
        ),
        (
            {"widgets": [widget("a", query={"metric": "m", "aggregation": "median"})]},
            "widgets[0].query.aggregation: Input should be 'avg', 'sum', 'count', 'min', "
            "'max', 'p50', 'p95' or 'p99'",
        ),
        (
            {"widgets": [widget("a", query={"metric": "m", "step": "90x"})]},
            "widgets[0].query.step: must be seconds or a duration such as 30s, 5m, 1h, 1d",
        ),
        (
            {
                "widgets": [
                    widget(
                        "a",
                        query={"metric": "m", "filters": [{"tag": "e", "op": "in", "value": "x"}]},
                    )
                ]
            },
            "widgets[0].query.filters[0].value: op 'in' needs a list of values",
        ),
        (
            {"widgets": [widget("a", options={"reduce": "median"})]},
            "widgets[0].options.reduce: must be one of last, mean, total, min, max, overall, "
            "series; got 'median'",
        ),
        (
            {"widgets": [widget("a", "gauge", options={"min": 1, "max": 1})]},
            "widgets[0].options.max: must be greater than options.min",
        ),
        (
            {
                "widgets": [
                    widget(
                        "a",
                        "stat",
                        options={
                            "thresholds": [
                                {"value": 2, "level": "ok"},
                                {"value": 1, "level": "bad"},
                            ]
                        },
                    )
                ]
            },
            "widgets[0].options.thresholds: must be in ascending order of value",
        ),
        ({"widgets": [widget("bad id")]}, "widgets[0].id: must be 1 to 64 characters"),
        ({"colour": "red"}, "colour: is not a known field"),
        ({"version": 3}, "version: is set by the server on create"),
    ],
)
def test_invalid_dashboards_get_422_naming_the_field_and_nothing_is_written(
    client: TestClient, change: dict[str, Any], message: str
) -> None:
    before = client.get(API).json()["items"]
    answer = client.post(API, json=board(**change))
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"].startswith(message), answer.json()["message"]
    assert client.get(API).json()["items"] == before
    # The same rules on PUT, and the stored dashboard stays as it was.
    stored = client.get(f"{API}/data-ops").json()
    if "version" not in change:
        replaced = client.put(f"{API}/data-ops", json=board(**change))
        assert replaced.status_code == 422
        assert replaced.json()["message"].startswith(message)
        assert client.get(f"{API}/data-ops").json() == stored


def test_bad_bodies_and_unknown_ids(client: TestClient) -> None:
    assert (
        client.post(API, content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    answer = client.post(API, json=[board()])
    assert answer.status_code == 422
    assert answer.json()["message"] == "body: must be a JSON object"
    for method, path in (
        ("GET", f"{API}/nope"),
        ("PUT", f"{API}/nope"),
        ("DELETE", f"{API}/nope"),
        ("GET", f"{API}/nope/export"),
    ):
        got = client.request(method, path, json=board() if method == "PUT" else None)
        assert got.status_code == 404, (method, path)
        assert got.json()["message"] == "dashboard 'nope' not found"


def test_export_then_import_makes_an_equal_dashboard_with_a_new_id(client: TestClient) -> None:
    created = create(client)
    exported = client.get(f"{API}/{created['id']}/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="ops.dashboard.json"'
    doc = exported.json()
    assert doc["flowdeck_dashboard"] == 1
    assert "id" not in doc and "version" not in doc

    imported = client.post(f"{API}/import", json=doc)
    assert imported.status_code == 201, imported.text
    copy = imported.json()
    assert copy["id"] != created["id"]
    assert copy["version"] == 1
    for key in ("title", "description", "time_range", "refresh", "widgets"):
        assert copy[key] == created[key], key

    # A GET answer imports too; an unknown format or a broken widget does not.
    assert client.post(f"{API}/import", json=created).status_code == 201
    answer = client.post(f"{API}/import", json={**doc, "flowdeck_dashboard": 2})
    assert answer.status_code == 422
    assert answer.json()["message"] == "flowdeck_dashboard: must be 1; got 2"
    doc["widgets"][0]["type"] = "radar"
    answer = client.post(f"{API}/import", json=doc)
    assert answer.status_code == 422
    assert answer.json()["message"].startswith("widgets[0].type: must be one of line")


def test_widget_data_for_each_kind(client: TestClient) -> None:
    from datetime import timedelta

    from tests.api.conftest import as_json
    from tests.conftest import T0, run

    reports = [run(f"p{i}", status="FAILED" if i == 0 else "SUCCESS") for i in range(4)]
    reports.append(run("q", batch_id="b2", env="dev", started_at=T0 - timedelta(days=1)))
    assert client.post("/api/v1/runs", json=[as_json(r) for r in reports]).status_code == 200
    window = {
        "start": (T0 - timedelta(days=2)).isoformat(),
        "end": (T0 + timedelta(hours=2)).isoformat(),
    }

    def data(kind: str, **extra: Any) -> dict[str, Any]:
        body = {"widget": widget("x", kind, **extra), "time_range": window}
        answer = client.post(f"{API}/widget-data", json=body)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    line = data("line")
    assert {s["name"]: len(s["points"]) for s in line["result"]["series"]} == {
        "FAILED": 1,
        "SUCCESS": 2,  # two buckets: today's runs and yesterday's
    }
    assert line["result"]["step"] == 3600  # auto: the finest step giving at most 120 buckets
    pie = data("pie", options={"reduce": "total"})
    assert {v["name"]: v["value"] for v in pie["values"]} == {"FAILED": 1, "SUCCESS": 4}
    rate = data(
        "stat",
        query={"metric": "runs.success_rate", "aggregation": "avg", "step": "1h"},
        options={"reduce": "overall", "format": "percent"},
    )
    assert rate["values"] == [{"name": "all", "tags": {}, "value": 0.8}]
    active = data(
        "stat",
        query={"metric": "runs.count", "group_by": ["pipeline"]},
        options={"reduce": "series"},
    )
    assert active["values"][0]["value"] == 5
    green = data(
        "gauge",
        query={"metric": "batches.green", "aggregation": "avg", "group_by": ["env"]},
        options={"reduce": "overall"},
    )
    assert {v["name"]: v["value"] for v in green["values"]} == {"dev": 1.0, "prod": 0.0}
    batch = data("batch_status")
    assert batch["batch"]["batch_id"] == "b1"
    assert batch["batch"]["failed"] == 1
    assert data("batch_status", options={"env": "dev"})["batch"]["batch_id"] == "b2"
    assert data("alerts")["items"] == []

    bad = client.post(
        f"{API}/widget-data",
        json={
            "widget": widget("x", query={"metric": "runs.count", "step": "1m"}),
            "time_range": {"last": "90d"},
        },
    )
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("widget.query.step: gives 129600 buckets")
    bad = client.post(f"{API}/widget-data", json={"widget": widget("x", "donut")})
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("widget.type: must be one of line")
    bad = client.post(f"{API}/widget-data", json={"widget": widget("x"), "range": "7d"})
    assert bad.json()["message"] == "range: is not a known field"
