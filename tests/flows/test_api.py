"""/api/v1/flows on both backends: declare (201), replace (200), read, list, delete, and
every 4xx with the field and the rule it names; nothing is written by a refused request."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.flows.conftest import declaration

API = "/api/v1/flows"


def test_declare_read_replace_list_delete(client: TestClient) -> None:
    created = client.put(f"{API}/ms", json=declaration())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["pipeline"] == "ms"
    assert body["project"] == "default"
    assert body["title"] == "Market signals"
    assert [s["name"] for s in body["stages"]] == ["ingest", "enrich", "store"]
    assert body["stages"][2] == {
        "name": "store",
        "queue_capacity": None,
        "capacity_per_s": None,
        "latency_p95_ms": None,
    }
    assert body["review_rate"] == 0.01
    assert body["thresholds"]["queue_fill"] == {"orange": 0.5, "red": 0.9}
    assert body["thresholds"]["e2e_latency_p95_ms"] == {"orange": 2000.0, "red": 5000.0}
    assert body["thresholds"]["stale_after_s"] == 120.0
    assert body["url"] == "/flows/ms"

    got = client.get(f"{API}/ms").json()
    assert got == body
    # What GET answered goes back with a change.
    got["review_rate"] = 0.02
    got["thresholds"]["load"] = {"orange": 0.7, "red": None}
    replaced = client.put(f"{API}/ms", json=got)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["review_rate"] == 0.02
    assert replaced.json()["thresholds"]["load"] == {"orange": 0.7, "red": None}
    assert replaced.json()["created_at"] == body["created_at"]

    other = client.put(f"{API}/ms", json={"project": "lab", "stages": [{"name": "a"}]})
    assert other.status_code == 201
    assert other.json()["title"] == "ms"
    assert other.json()["url"] == "/flows/ms?project=lab"
    items = client.get(API).json()["items"]
    assert [(i["project"], i["pipeline"]) for i in items] == [("default", "ms"), ("lab", "ms")]
    assert "live" not in items[0]
    assert [i["project"] for i in client.get(API, params={"project": "lab"}).json()["items"]] == [
        "lab"
    ]
    live = client.get(API, params={"live": "true"}).json()["items"][0]["live"]
    assert live["light"] == "orange"  # declared, nothing reported yet
    assert live["stages"] == {"ingest": "orange", "enrich": "orange", "store": "orange"}

    assert client.get(f"{API}/ms", params={"project": "lab"}).json()["stages"] == [
        {"name": "a", "queue_capacity": None, "capacity_per_s": None, "latency_p95_ms": None}
    ]
    assert client.delete(f"{API}/ms").status_code == 204
    missing = client.get(f"{API}/ms")
    assert missing.status_code == 404
    assert missing.json()["message"] == "flow 'ms' not found"
    assert client.get(f"{API}/ms/live").status_code == 404
    assert client.delete(f"{API}/ms").status_code == 404
    assert client.get(f"{API}/ms", params={"project": "lab"}).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stages": []}, "stages: List should have at least 1 item after validation, not 0"),
        (
            {"stages": [{"name": f"s{i}"} for i in range(21)]},
            "stages: List should have at most 20 items after validation, not 21",
        ),
        (
            {"stages": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
            "stages[2].name: must be unique; 'a' is also stages[0]",
        ),
        (
            {"stages": [{"name": "en rich"}]},
            "stages[0].name: must be 1 to 200 characters: a letter, digit or _ first, then "
            "letters, digits, _ . : -",
        ),
        (
            {"stages": [{"name": "a", "queue_capacity": 0}]},
            "stages[0].queue_capacity: Input should be greater than or equal to 1",
        ),
        (
            {"stages": [{"name": "a", "capacity_per_s": -1}]},
            "stages[0].capacity_per_s: Input should be greater than 0",
        ),
        ({"stages": [{"name": "a", "speed": 3}]}, "stages[0].speed: is not a known field"),
        (
            {"stages": [{"name": "a", "latency_p95_ms": {"orange": 900, "red": 500}}]},
            "stages[0].latency_p95_ms.red: must be at least orange (900); got 500",
        ),
        ({"stages": None}, "stages: Input should be a valid list"),
        (
            {"signals": ["x", "x"]},
            "signals[1]: must be unique; 'x' is also signals[0]",
        ),
        (
            {"review_rate": 0.05},
            "review_rate: must be between 0.005 and 0.02 (0.5 % to 2 % of events)",
        ),
        (
            {"thresholds": {"queue_fill": {"orange": 0.95}}},
            "thresholds.queue_fill.red: must be at least orange (0.95); got 0.9",
        ),
        (
            {"thresholds": {"load": {"orange": 2, "red": 1.5}}},
            "thresholds.load.red: must be at least orange (2); got 1.5",
        ),
        ({"thresholds": {"queue": {"red": 1}}}, "thresholds.queue: is not a known field"),
        (
            {"thresholds": {"backlog": {"orange": -5}}},
            "thresholds.backlog.orange: Input should be greater than or equal to 0",
        ),
        (
            {"thresholds": {"stale_after_s": 1}},
            "thresholds.stale_after_s: Input should be greater than or equal to 10",
        ),
        ({"pipeline": "other"}, "pipeline: must be the path's pipeline 'ms'; got 'other'"),
        ({"project": ""}, "project: must be 1 to 200 characters without control characters"),
        ({"title": "x" * 201}, "title: String should have at most 200 characters"),
        ({"colour": "red"}, "colour: is not a known field"),
    ],
)
def test_bad_declarations_are_422_naming_the_field_and_rule(
    client: TestClient, change: dict[str, Any], message: str
) -> None:
    answer = client.put(f"{API}/ms", json=declaration(**change))
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"] == message
    assert client.get(f"{API}/ms").status_code == 404  # nothing written


def test_other_bad_requests(client: TestClient) -> None:
    bad_name = client.put(f"{API}/a%20b", json=declaration())
    assert bad_name.status_code == 422
    assert bad_name.json()["message"].startswith("pipeline: must be 1 to 200 characters")
    not_object = client.put(f"{API}/ms", json=[1])
    assert (not_object.status_code, not_object.json()["message"]) == (
        422,
        "body: must be a JSON object",
    )
    not_json = client.put(f"{API}/ms", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert client.put(f"{API}/ms", json=declaration()).status_code == 201
    window = client.get(f"{API}/ms/live", params={"window": "2h"})
    assert (window.status_code, window.json()["message"]) == (
        422,
        "window: must be 10 s to 1 h (seconds, or 30s, 5m, 1h); got '2h'",
    )
    trend = client.get(f"{API}/ms/live", params={"trend": "2d"})
    assert (trend.status_code, trend.json()["message"]) == (
        422,
        "trend: must be one of 0, 5m, 15m, 1h; got '2d'",
    )
    assert client.get(f"{API}/ms/live", params={"window": "5m"}).json()["window_s"] == 300
