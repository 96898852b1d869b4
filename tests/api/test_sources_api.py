"""GET /api/v1/sources, /api/v1/sources/{pipeline} and /api/v1/sources/by/{label}/{value} on
both backends: freshness against the stale rules' max_age (else 4 h), failures, trends of a
chosen field, label groups and a label value's own source."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.sources import DEFAULT_STALE_S
from tests.api.conftest import MakeClient, as_json
from tests.conftest import T0, FixedClock, run


def feed(pipeline: str, day: int, retailer: str, skus: int, **fields: Any) -> dict[str, Any]:
    start = T0 - timedelta(days=day)
    return as_json(
        run(
            pipeline,
            batch_id=f"b{10 - day}",
            started_at=start,
            ended_at=start + timedelta(minutes=10),
            custom_stats={"sku_count": skus, "note": "text is not a trend"},
            labels={"retailer": retailer},
            **fields,
        )
    )


@pytest.fixture
def api(make_client: MakeClient, clock: FixedClock, tmp_path: Path) -> TestClient:
    clock.now = T0 + timedelta(hours=2)
    path = tmp_path / "alerts.yaml"
    path.write_text(
        "rules:\n"
        "  - {name: acme-stale, kind: stale, max_age: 1h, selector: {pipeline: 'acme_*'}}\n"
        "  - {name: all-stale, kind: stale, max_age: 6h}\n"
    )
    client = make_client(alerts_file=str(path), alert_tick_seconds=3600)
    reports = [feed("acme_sku", d, "acme", 1000 + d, rows_written=500 + d) for d in (4, 3, 2)]
    # The latest acme run failed: its last success ended 2 days ago, over the 1 h threshold.
    reports.append(
        feed("acme_sku", 1, "acme", 10, status="FAILED", error_message="supplier feed missing")
    )
    reports += [feed("globex_sku", d, "globex", 2000, rows_written=None) for d in (2, 1)]
    # Fresh: succeeded an hour ago, inside the 6 h of all-stale.
    reports.append(
        as_json(
            run(
                "globex_promo",
                batch_id="b10",
                started_at=T0 + timedelta(minutes=50),
                ended_at=T0 + timedelta(minutes=60),
                custom_stats={"promo_count": 12},
                labels={"retailer": "globex"},
            )
        )
    )
    answer = client.post("/api/v1/runs", json=reports)
    assert answer.status_code == 200, answer.text
    return client


def test_sources_per_pipeline(api: TestClient) -> None:
    body = api.get("/api/v1/sources?field=sku_count").json()
    assert body["by"] == "pipeline"
    assert body["field"] == "sku_count"
    assert body["default_stale_after_s"] == DEFAULT_STALE_S
    assert "sku_count" in body["fields"] and "promo_count" not in body["fields"][:6]
    assert "note" not in body["fields"]
    assert body["labels"] == ["retailer"]
    assert [i["pipeline"] for i in body["items"]] == ["acme_sku", "globex_sku", "globex_promo"]
    acme, globex, promo = body["items"]
    assert acme["stale"] is True
    assert acme["stale_after_s"] == 3600
    assert acme["stale_rule"] == "acme-stale"
    assert acme["status"] == "FAILED"
    assert acme["consecutive_failures"] == 1
    assert acme["failures"] == 1 and acme["recent_runs"] == 4
    assert acme["last_success_at"] == "2026-11-18T01:10:00Z"
    assert acme["latest_value"] == 1002
    assert [p["value"] for p in acme["trend"]] == [1004, 1003, 1002, 10]
    assert [p["status"] for p in acme["trend"]][-1] == "FAILED"
    assert globex["stale"] is True  # a day old, over the 6 h of all-stale
    assert globex["stale_after_s"] == 6 * 3600
    assert promo["stale"] is False
    assert promo["trend"] == [
        {"t": "2026-11-20T01:50:00Z", "value": None, "status": "SUCCESS", "batch_id": "b10"}
    ]
    assert body["stale"] == 2 and body["failing"] == 1 and body["total"] == 3


def test_a_weekly_source_keeps_its_last_30_runs(api: TestClient) -> None:
    """Most pipelines' last runs are read together from the last weeks; one that runs weekly
    has older ones, which are read too."""
    weekly = [
        as_json(
            run(
                "acme_weekly",
                batch_id=f"w{week}",
                started_at=T0 - timedelta(weeks=week),
                ended_at=T0 - timedelta(weeks=week) + timedelta(minutes=5),
                rows_written=week,
                labels={"retailer": "acme"},
            )
        )
        for week in range(40)
    ]
    assert api.post("/api/v1/runs", json=weekly).status_code == 200
    items = {i["pipeline"]: i for i in api.get("/api/v1/sources").json()["items"]}
    trend = items["acme_weekly"]["trend"]
    assert items["acme_weekly"]["recent_runs"] == 30
    assert [p["value"] for p in trend] == list(range(29, -1, -1))  # oldest first
    assert items["acme_sku"]["recent_runs"] == 4  # (fewer runs than 30: all of them)
    group = api.get("/api/v1/sources/by/retailer/acme?env=prod").json()
    assert sorted(m["pipeline"] for m in group["sources"]) == ["acme_sku", "acme_weekly"]
    weekly_member = next(m for m in group["sources"] if m["pipeline"] == "acme_weekly")
    assert weekly_member["recent_runs"] == 40


def test_sources_by_label_sum_the_field_per_batch(api: TestClient) -> None:
    body = api.get("/api/v1/sources?by=retailer&field=sku_count").json()
    assert body["by"] == "retailer"
    acme, globex = body["items"]
    assert (acme["key"], acme["pipelines"], acme["members"]) == ("acme", 1, ["acme_sku"])
    assert (globex["key"], globex["pipelines"]) == ("globex", 2)
    assert globex["members"] == ["globex_promo", "globex_sku"]
    assert globex["stale"] is True and globex["stale_pipelines"] == 1
    assert globex["status"] == "SUCCESS"
    assert [(p["batch_id"], p["value"]) for p in globex["trend"]] == [
        ("b8", 2000),
        ("b9", 2000),
        ("b10", None),
    ]


def test_one_source_with_its_history(api: TestClient) -> None:
    body = api.get("/api/v1/sources/acme_sku?env=prod&field=rows_written").json()
    assert body["pipeline"] == "acme_sku" and body["field"] == "rows_written"
    assert [h["value"] for h in body["history"]] == [504, 503, 502, 990]
    assert [h["status"] for h in body["history"]] == ["SUCCESS"] * 3 + ["FAILED"]
    (failure,) = body["failure_history"]
    assert failure["error_message"] == "supplier feed missing"
    assert failure["run_id"] == "b9:acme_sku"
    assert "sku_count" in body["fields"]
    assert body["stale"] is True


def test_sources_refuse_bad_input_by_name(api: TestClient) -> None:
    missing = api.get("/api/v1/sources/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "pipeline 'nope' not found"
    bad = api.get("/api/v1/sources?field=sku count")
    assert bad.status_code == 422
    assert bad.json()["message"].startswith("field: must be rows_written, rows_read")
    by = api.get("/api/v1/sources?by=a b")
    assert by.status_code == 422
    assert by.json()["message"] == (
        "by: must be pipeline or a label name such as retailer; got 'a b'"
    )
    two = api.post("/api/v1/runs", json=[as_json(run("acme_sku", batch_id="d1", env="dev"))])
    assert two.status_code == 200
    ambiguous = api.get("/api/v1/sources/acme_sku")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["message"] == (
        "env: pipeline 'acme_sku' runs in default/dev, default/prod: choose one"
    )


def test_a_label_value_as_one_source(api: TestClient) -> None:
    body = api.get("/api/v1/sources/by/retailer/globex?field=sku_count").json()
    assert (body["key"], body["label"], body["env"]) == ("globex", "retailer", "prod")
    assert body["members"] == ["globex_promo", "globex_sku"]
    assert body["field"] == "sku_count"
    assert {"sku_count", "promo_count"} <= set(body["fields"]) and "note" not in body["fields"]
    assert body["stale"] is True and body["stale_pipelines"] == 1
    # Each pipeline with its state, the stale one first.
    assert [(p["pipeline"], p["stale"], p["status"]) for p in body["sources"]] == [
        ("globex_sku", True, "SUCCESS"),
        ("globex_promo", False, "SUCCESS"),
    ]
    assert body["sources"][0]["stale_after_s"] == 6 * 3600
    assert "trend" not in body["sources"][0]
    assert [(h["batch_id"], h["value"], h["runs"]) for h in body["history"]] == [
        ("b8", 2000, 1),
        ("b9", 2000, 1),
        ("b10", None, 1),
    ]
    assert body["failure_history"] == []
    acme = api.get("/api/v1/sources/by/retailer/acme?env=prod&field=rows_written").json()
    assert [(h["batch_id"], h["value"], h["status"]) for h in acme["history"]] == [
        ("b6", 504, "SUCCESS"),
        ("b7", 503, "SUCCESS"),
        ("b8", 502, "SUCCESS"),
        ("b9", 990, "FAILED"),
    ]
    assert acme["history"][-1]["failed"] == 1
    (failure,) = acme["failure_history"]
    assert failure["pipeline"] == "acme_sku"
    assert failure["run_id"] == "b9:acme_sku"
    assert failure["error_message"] == "supplier feed missing"
    assert acme["status"] == "FAILED" and acme["consecutive_failures"] == 1
    # The list's row and the group's source agree on what they share.
    listed = api.get("/api/v1/sources?by=retailer&field=rows_written").json()["items"][0]
    assert listed["key"] == "acme"
    for key in ("status", "stale", "stale_pipelines", "last_success_at", "failures", "members"):
        assert listed[key] == acme[key], key


def test_a_label_value_sums_the_field_per_batch(api: TestClient) -> None:
    reports = [
        as_json(
            run(
                pipeline,
                batch_id=batch,
                started_at=T0 + timedelta(minutes=minute),
                ended_at=T0 + timedelta(minutes=minute + 5),
                custom_stats={"sku_count": skus},
                labels={"retailer": "initech/eu"},
                status=status,
            )
        )
        for pipeline, batch, minute, skus, status in [
            ("ini_a", "n1", 0, 100, "SUCCESS"),
            ("ini_b", "n1", 3, 40, "FAILED"),
            ("ini_a", "n2", 60, 110, "SUCCESS"),
            ("ini_b", "n2", 61, 45, "SUCCESS"),
        ]
    ]
    assert api.post("/api/v1/runs", json=reports).status_code == 200
    # A value with a slash, quoted in the URL.
    body = api.get("/api/v1/sources/by/retailer/initech%2Feu?field=sku_count").json()
    assert [
        (h["batch_id"], h["value"], h["status"], h["runs"], h["failed"]) for h in body["history"]
    ] == [
        ("n1", 140, "FAILED", 2, 1),
        ("n2", 155, "SUCCESS", 2, 0),
    ]
    assert body["history"][0]["t"] == "2026-11-20T01:00:00Z"  # T0: the earlier of the two
    assert body["latest_value"] == 155
    assert [f["pipeline"] for f in body["failure_history"]] == ["ini_b"]


def test_a_label_value_refuses_bad_input_by_name(api: TestClient) -> None:
    missing = api.get("/api/v1/sources/by/retailer/nope")
    assert missing.status_code == 404
    assert missing.json()["message"] == "source 'retailer=nope' not found"
    assert api.get("/api/v1/sources/by/region/acme").status_code == 404
    by = api.get("/api/v1/sources/by/pipeline/acme")
    assert by.status_code == 422
    assert by.json()["message"] == "label: must be a label name such as retailer; got 'pipeline'"
    bad = api.get("/api/v1/sources/by/a b/acme")
    assert bad.status_code == 422
    assert bad.json()["message"] == (
        "by: must be pipeline or a label name such as retailer; got 'a b'"
    )
    field = api.get("/api/v1/sources/by/retailer/acme?field=sku count")
    assert field.status_code == 422
    assert field.json()["message"].startswith("field: must be rows_written")
    dev = run("acme_dev", batch_id="d1", env="dev", labels={"retailer": "acme"})
    loose = run("loose", batch_id="d1", env="dev")
    assert api.post("/api/v1/runs", json=[as_json(dev), as_json(loose)]).status_code == 200
    ambiguous = api.get("/api/v1/sources/by/retailer/acme")
    assert ambiguous.status_code == 422
    assert ambiguous.json()["message"] == (
        "env: retailer 'acme' runs in default/dev, default/prod: choose one"
    )
    dev_only = api.get("/api/v1/sources/by/retailer/acme?env=dev").json()
    assert dev_only["members"] == ["acme_dev"]
    # The pipelines without the label, as the list groups them.
    none = api.get("/api/v1/sources/by/retailer/(none)?env=dev").json()
    assert none["members"] == ["loose"]


def test_sources_are_in_openapi(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert paths["/api/v1/sources"]["get"]["summary"] == "Sources: freshness and trends"
    params = {p["name"] for p in paths["/api/v1/sources/{pipeline}"]["get"]["parameters"]}
    assert params == {"pipeline", "field", "project", "env"}
    group = paths["/api/v1/sources/by/{label}/{value}"]["get"]
    assert {p["name"] for p in group["parameters"]} == {"label", "value", "field", "project", "env"}
    assert group["summary"] == (
        "One label value as a source: its pipelines, summed trend and failures"
    )
    schema = group["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SourceGroupDetail"}
