"""POST /api/v1/metrics/query on both backends: the level chosen per step, every
aggregation against a brute force over the points, group_by, filters, run-derived series and
saved definitions."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.timeseries import sketch
from tests.api.conftest import as_json
from tests.conftest import T0, run

START = 1_763_596_800  # 2025-11-20T00:00:00Z
HOSTS = {"a": "eu", "b": "eu", "c": "us"}
UNKNOWN_RUN_METRIC = (
    "metric: unknown run metric; one of runs.count, runs.dq_errors, runs.duration_s, "
    "runs.rows_invalid, runs.rows_read, runs.rows_written, runs.success_rate"
)


def iso(seconds: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def points(client: TestClient) -> list[tuple[str, int, float]]:
    """Two days of latency points for three hosts, sent host by host in columns."""
    rng = random.Random(7)
    rows = [
        (host, START + rng.randrange(0, 2 * 86_400), round(rng.lognormvariate(3, 1), 3))
        for host in HOSTS
        for _ in range(300)
    ]
    for host, dc in HOSTS.items():
        mine = [r for r in rows if r[0] == host]
        body = {
            "name": "latency",
            "tags": {"host": host, "dc": dc},
            "times": [t for _, t, _ in mine],
            "values": [v for _, _, v in mine],
        }
        assert client.post("/api/v1/metrics/points", json=body).status_code == 200
    no_dc = {"name": "latency", "time": START + 10, "value": 1.0, "tags": {"host": "d"}}
    assert client.post("/api/v1/metrics/points", json=no_dc).status_code == 200
    return [*rows, ("d", START + 10, 1.0)]


def query(client: TestClient, **body: Any) -> dict[str, Any]:
    body.setdefault("start", iso(START))
    body.setdefault("end", iso(START + 2 * 86_400))
    got = client.post("/api/v1/metrics/query", json=body)
    assert got.status_code == 200, got.text
    result: dict[str, Any] = got.json()
    return result


def brute(
    rows: list[tuple[str, int, float]], step: int, key: Any
) -> dict[Any, dict[str, list[float]]]:
    out: dict[Any, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for host, t, v in rows:
        out[key(host)][iso(t - t % step)].append(v)
    return out


def exact(aggregation: str, values: list[float]) -> float:
    ordered = sorted(values)
    return {
        "count": len(values),
        "sum": math.fsum(values),
        "avg": math.fsum(values) / len(values),
        "min": ordered[0],
        "max": ordered[-1],
        "p50": ordered[math.floor(0.5 * (len(values) - 1))],
        "p95": ordered[math.floor(0.95 * (len(values) - 1))],
        "p99": ordered[math.floor(0.99 * (len(values) - 1))],
    }[aggregation]


@pytest.mark.parametrize(
    ("step", "level"),
    [(3_600, "1h"), ("2h", "1h"), ("10m", "5m"), ("1m", "1m"), ("90s", "raw"), ("1d", "1d")],
)
def test_every_aggregation_at_every_level_matches_brute_force(
    client: TestClient, points: list[tuple[str, int, float]], step: int | str, level: str
) -> None:
    for aggregation in ("avg", "sum", "count", "min", "max", "p50", "p95", "p99"):
        got = query(client, metric="latency", step=step, aggregation=aggregation, group_by=["dc"])
        seconds = got["step"]
        assert got["level"] == level
        expected = brute(points, seconds, lambda h: HOSTS.get(h))
        assert [s["tags"] for s in got["series"]] == [{"dc": "eu"}, {"dc": "us"}, {"dc": None}]
        for series in got["series"]:
            want = expected[series["tags"]["dc"]]
            assert [p[0] for p in series["points"]] == sorted(want)
            for at, value in series["points"]:
                truth = exact(aggregation, want[at])
                if aggregation.startswith("p"):
                    assert abs(value - truth) <= sketch.RELATIVE_ACCURACY * abs(truth) + 1e-9
                else:
                    assert value == pytest.approx(truth, rel=1e-9)


def test_filters_equals_in_and_glob(
    client: TestClient, points: list[tuple[str, int, float]]
) -> None:
    def hosts(*filters: dict[str, Any]) -> list[str]:
        got = query(
            client,
            metric="latency",
            step="1d",
            aggregation="count",
            group_by=["host"],
            filters=list(filters),
        )
        return [s["tags"]["host"] for s in got["series"]]

    assert hosts() == ["a", "b", "c", "d"]
    assert hosts({"tag": "dc", "value": "eu"}) == ["a", "b"]
    assert hosts({"tag": "host", "op": "in", "value": ["a", "c", "zz"]}) == ["a", "c"]
    assert hosts({"tag": "dc", "op": "glob", "value": "u*"}) == ["c"]
    assert hosts({"tag": "host", "op": "glob", "value": "[bd]"}) == ["b", "d"]
    assert hosts({"tag": "dc", "value": "eu"}, {"tag": "host", "value": "b"}) == ["b"]
    assert hosts({"tag": "dc", "value": "mars"}) == []
    total = query(client, metric="latency", step="1d", aggregation="count")
    assert total["series"][0]["tags"] == {}
    assert sum(p[1] for p in total["series"][0]["points"]) == len(points)


def test_the_range_is_widened_to_whole_steps(
    client: TestClient, points: list[tuple[str, int, float]]
) -> None:
    got = query(
        client,
        metric="latency",
        step="1h",
        aggregation="count",
        start=iso(START + 3_600 + 1_200),
        end=iso(START + 3 * 3_600 - 600),
    )
    assert (got["start"], got["end"]) == (iso(START + 3_600), iso(START + 3 * 3_600))
    want = brute(points, 3_600, lambda h: None)[None]
    assert got["series"][0]["points"] == [
        [iso(START + h * 3_600), len(want[iso(START + h * 3_600)])] for h in (1, 2)
    ]
    assert query(client, metric="nothing_here", step="1h")["series"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"metric": "latency", "definition": "x"},
            "metric: give either metric or definition, not both",
        ),
        ({}, "metric: give either metric or definition, not both"),
        ({"metric": "latency", "end": iso(START - 1)}, "end: must be after start"),
        (
            {"metric": "latency", "step": "5 minutes"},
            "step: must be seconds or a duration such as 30s, 5m, 1h, 1d",
        ),
        ({"metric": "latency", "step": 0}, "step: must be between 1 second and 366 days"),
        (
            {"metric": "latency", "step": "1s"},
            "step: gives 172800 buckets over the range; at most 10000: choose a larger step "
            "or a shorter range",
        ),
        (
            {"metric": "latency", "aggregation": "median"},
            "aggregation: Input should be "
            "'avg', 'sum', 'count', 'min', 'max', 'p50', 'p95' or 'p99'",
        ),
        (
            {"metric": "runs.colour"},
            UNKNOWN_RUN_METRIC,
        ),
        (
            {"metric": "latency", "filters": [{"tag": "dc", "op": "in", "value": "eu"}]},
            "filters[0].value: op 'in' needs a list of values",
        ),
        (
            {"metric": "latency", "filters": [{"tag": "dc", "op": "like", "value": "eu"}]},
            "filters[0].op: Input should be 'equals', 'in' or 'glob'",
        ),
        (
            {"metric": "latency", "start": "2025-11-20T00:00:00"},
            "start: Input should have timezone info",
        ),
        ({"metric": "latency", "colour": 1}, "colour: is not a known field"),
    ],
)
def test_bad_queries_name_the_field_and_rule(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    body.setdefault("start", iso(START))
    body.setdefault("end", iso(START + 2 * 86_400))
    got = client.post("/api/v1/metrics/query", json=body)
    assert got.status_code == 422, got.text
    assert got.json()["message"] == message


def test_run_derived_series(client: TestClient) -> None:
    runs = [
        run("load_a", "b1", status="SUCCESS", labels={"team": "sales"}),
        run("load_b", "b1", status="FAILED", ended_at=T0 + timedelta(minutes=30)),
        run("load_c", "b1", status="RUNNING", ended_at=None),
        run(
            "load_a",
            "b2",
            started_at=T0 + timedelta(days=1),
            ended_at=T0 + timedelta(days=1, minutes=20),
        ),
        run(
            "export",
            "b2",
            started_at=T0 + timedelta(days=1),
            ended_at=T0 + timedelta(days=1, minutes=40),
        ),
    ]
    assert client.post("/api/v1/runs", json=[as_json(r) for r in runs]).status_code == 200
    window = {
        "start": iso(int(T0.timestamp())),
        "end": iso(int(T0.timestamp()) + 2 * 86_400),
        "step": "1d",
    }
    day1, day2 = iso(int(T0.timestamp()) - 3_600), iso(int(T0.timestamp()) - 3_600 + 86_400)
    by_status = query(
        client, metric="runs.count", aggregation="count", group_by=["status"], **window
    )
    assert by_status["level"] == "runs"
    assert {s["tags"]["status"]: s["points"] for s in by_status["series"]} == {
        "FAILED": [[day1, 1]],
        "RUNNING": [[day1, 1]],
        "SUCCESS": [[day1, 1], [day2, 2]],
    }
    rate = query(client, metric="runs.success_rate", aggregation="avg", **window)
    assert rate["series"][0]["points"] == [[day1, 0.5], [day2, 1.0]]
    slow = query(
        client,
        metric="runs.duration_s",
        aggregation="max",
        group_by=["pipeline"],
        filters=[{"tag": "pipeline", "op": "glob", "value": "load_*"}],
        **window,
    )
    assert {s["tags"]["pipeline"]: s["points"] for s in slow["series"]} == {
        "load_a": [[day1, 600.0], [day2, 1_200.0]],
        "load_b": [[day1, 1_800.0]],
    }
    p50 = query(client, metric="runs.duration_s", aggregation="p50", **window)
    assert abs(p50["series"][0]["points"][1][1] - 1_200.0) <= 12.0
    team = query(client, metric="runs.rows_read", aggregation="sum", group_by=["team"], **window)
    assert [s["tags"] for s in team["series"]] == [{"team": "sales"}, {"team": None}]


def test_definitions_are_saved_and_reused(
    client: TestClient, points: list[tuple[str, int, float]]
) -> None:
    spec = {
        "metric": "latency",
        "aggregation": "max",
        "group_by": ["host"],
        "filters": [{"tag": "dc", "value": "eu"}],
        "description": "worst EU latency",
    }
    made = client.put("/api/v1/metrics/definitions/eu_latency", json=spec)
    assert made.status_code == 201, made.text
    assert made.json()["description"] == "worst EU latency"
    assert made.json()["project"] == "default"
    saved = query(client, definition="eu_latency", step="1d")
    assert saved["aggregation"] == "max"
    assert [s["tags"] for s in saved["series"]] == [{"host": "a"}, {"host": "b"}]
    # The query may change aggregation and group_by, and add filters.
    narrowed = query(
        client,
        definition="eu_latency",
        step="1d",
        aggregation="count",
        group_by=[],
        filters=[{"tag": "host", "value": "b"}],
    )
    assert sum(p[1] for p in narrowed["series"][0]["points"]) == 300
    replaced = client.put(
        "/api/v1/metrics/definitions/eu_latency", json={**spec, "aggregation": "p99"}
    )
    assert replaced.status_code == 200
    listed = client.get("/api/v1/metrics/definitions").json()["definitions"]
    assert [(d["name"], d["aggregation"]) for d in listed] == [("eu_latency", "p99")]
    assert client.get("/api/v1/metrics/definitions/eu_latency").json()["aggregation"] == "p99"
    assert client.delete("/api/v1/metrics/definitions/eu_latency").status_code == 204
    gone = client.get("/api/v1/metrics/definitions/eu_latency")
    assert gone.status_code == 404
    assert gone.json()["message"] == "metric definition 'eu_latency' not found"
    assert client.delete("/api/v1/metrics/definitions/eu_latency").status_code == 404
    missing = client.post(
        "/api/v1/metrics/query",
        json={"definition": "eu_latency", "start": iso(START), "end": iso(START + 60)},
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "9bad",
            {"metric": "latency"},
            "name: must be 1 to 200 characters: a letter or _ first, then letters, digits, _ . : -",
        ),
        (
            "ok",
            {"metric": "runs.nope"},
            UNKNOWN_RUN_METRIC,
        ),
        ("ok", {"aggregation": "avg"}, "metric: is required"),
        (
            "ok",
            {"metric": "x", "filters": [{"tag": "a", "op": "glob", "value": ["a"]}]},
            "filters[0].value: op 'glob' needs one string",
        ),
    ],
)
def test_bad_definitions_are_refused(
    client: TestClient, name: str, body: dict[str, Any], message: str
) -> None:
    got = client.put(f"/api/v1/metrics/definitions/{name}", json=body)
    assert got.status_code == 422, got.text
    assert got.json()["message"] == message
    assert client.get("/api/v1/metrics/definitions").json()["definitions"] == []


def test_names_list_metrics_and_run_metrics(
    client: TestClient, points: list[tuple[str, int, float]]
) -> None:
    got = client.get("/api/v1/metrics/names").json()
    assert got["metrics"] == [{"name": "latency", "series": 4}]
    assert "runs.success_rate" in got["run_metrics"]
