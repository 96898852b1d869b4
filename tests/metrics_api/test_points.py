"""POST /api/v1/metrics/points: both forms, validation (422 naming the field and the rule,
nothing written), the tag cardinality limit, size limits."""

from __future__ import annotations

import gzip
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from flowdeck.errors import InvalidInput
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries.points import parse_points
from tests.api.conftest import MakeClient, services_of
from tests.metrics_api.conftest import series_summary

T = 1_763_600_000  # 2025-11-20T00:53:20Z, seconds


def store_of(client: TestClient) -> MetricsSql:
    store = services_of(client).store
    assert isinstance(store, MetricsSql)
    return store


def total_count(client: TestClient, name: str, project: str = "default") -> int:
    rows = series_summary(store_of(client), project, name, 0, 0, 2 * T, 2 * T)
    return sum(r[0] for r in rows.values())


def test_points_and_columns_are_written_with_their_rollups(client: TestClient) -> None:
    body = [
        {"name": "cpu", "time": "2025-11-20T00:53:20Z", "value": 1.5, "tags": {"host": "a"}},
        {"name": "cpu", "time": T + 1, "value": 2, "tags": {"host": "b"}, "project": "p2"},
        {"name": "cpu", "tags": {"host": "a"}, "times": [T + 2, T + 3.5], "values": [3, 4]},
    ]
    got = client.post("/api/v1/metrics/points", json=body)
    assert got.status_code == 200, got.text
    assert got.json() == {"accepted": 4}
    store = store_of(client)
    assert sorted(store.list_metric_series("default", "cpu").values(), key=str) == [{"host": "a"}]
    day = series_summary(store, "default", "cpu", 86_400, 0, 2 * T, 86_400)
    assert list(day.values()) == [(3, 8.5, 1.5, 4.0)]
    assert total_count(client, "cpu", "p2") == 1
    one = client.post("/api/v1/metrics/points", json={"name": "mem", "time": T, "value": -1e300})
    assert one.json() == {"accepted": 1}
    assert services_of(client).writer.stats.points_written == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"name": "9cpu", "time": T, "value": 1},
            "point.name: must be 1 to 200 characters: a letter or _ first, then letters, "
            "digits, _ . : -",
        ),
        (
            {"name": "runs.count", "time": T, "value": 1},
            "point.name: names starting with 'runs.' are reserved for run metrics",
        ),
        (
            [{"name": "cpu", "time": T, "value": 1}, {"name": "cpu", "time": T, "value": "x"}],
            "points[1].value: must be a finite number of magnitude at most 1.762e+308",
        ),
        (
            {"name": "cpu", "time": T, "value": True},
            "point.value: must be a finite number of magnitude at most 1.762e+308",
        ),
        (
            {"name": "cpu", "time": "2025-11-20T00:00:00", "value": 1},
            "point.time: must include a time zone offset (e.g. 2026-01-31T02:00:00Z)",
        ),
        (
            {"name": "cpu", "time": -1, "value": 1},
            "point.time: must be between 1970-01-01 and 9999-12-31",
        ),
        (
            {"name": "cpu", "time": T, "value": 1, "tags": {"host name": "a"}},
            "point.tags: tag key 'host name' must be 1 to 100 characters: a letter or _ first, "
            "then letters, digits, _ . -",
        ),
        (
            {"name": "cpu", "time": T, "value": 1, "tags": {"host": ""}},
            "point.tags: tag 'host' must have a value of 1 to 200 characters without control "
            "characters",
        ),
        (
            {"name": "cpu", "time": T, "value": 1, "colour": "red"},
            "point.colour: is not a known field",
        ),
        (
            {"name": "cpu", "times": [T, T + 1], "values": [1]},
            "point.values: must have one value per time: 2 times, 1 values",
        ),
        (
            {"name": "cpu", "times": [T, "yesterday"], "values": [1, 2]},
            "point.times[1]: must be an ISO-8601 timestamp with a zone offset or a number of "
            "seconds since 1970-01-01 UTC",
        ),
        (
            {"name": "cpu", "times": [T, T + 1, -5], "values": [1, 2, 3]},
            "point.times[2]: must be between 1970-01-01 and 9999-12-31",
        ),
        (
            {"name": "cpu", "times": [T, T + 1], "values": [1, True]},
            "point.values[1]: must be a finite number of magnitude at most 1.762e+308",
        ),
        (
            [{"name": "9cpu", "times": [T, T + 1], "values": [1, 2]}],
            "points[0].name: must be 1 to 200 characters: a letter or _ first, then letters, "
            "digits, _ . : -",
        ),
        ({"name": "cpu", "value": 1}, "point.time: is required"),
        ([], "points: must contain at least one point"),
        ([3], "points[0]: must be a point or a series object"),
    ],
)
def test_invalid_points_are_refused_by_field_and_rule(
    client: TestClient, body: Any, message: str
) -> None:
    got = client.post("/api/v1/metrics/points", json=body)
    assert got.status_code == 422, got.text
    assert got.json()["message"] == message
    assert store_of(client).list_metric_names("default") == []


def test_tag_cardinality_is_limited_per_metric(make_client: MakeClient) -> None:
    client = make_client(metric_max_series=3)
    hosts = [{"name": "cpu", "time": T, "value": 1, "tags": {"host": h}} for h in "abc"]
    assert client.post("/api/v1/metrics/points", json=hosts).status_code == 200
    # Known series and other metrics are still welcome.
    again = [*hosts, {"name": "mem", "time": T, "value": 1, "tags": {"host": "d"}}]
    assert client.post("/api/v1/metrics/points", json=again).status_code == 200
    more = [
        {"name": "cpu", "time": T + 5, "value": 1, "tags": {"host": "a"}},
        {"name": "cpu", "time": T, "value": 1, "tags": {"host": "d"}},
    ]
    got = client.post("/api/v1/metrics/points", json=more)
    assert got.status_code == 422
    assert got.json()["message"] == (
        "points[1].tags: metric 'cpu' (project 'default') would have 4 tag combinations, "
        "over the limit of 3 per metric (FLOWDECK_METRIC_MAX_SERIES)"
    )
    assert got.json()["detail"][0]["type"] == "too_many_series"
    assert total_count(client, "cpu") == 6  # nothing of the refused request
    assert store_of(client).list_metric_names("default") == [("cpu", 3), ("mem", 1)]


def test_size_limits_and_encodings(make_client: MakeClient) -> None:
    client = make_client(metric_max_points_per_request=3, max_body_bytes=2_000)
    four = {"name": "cpu", "times": [T, T + 1, T + 2, T + 3], "values": [1, 2, 3, 4]}
    got = client.post("/api/v1/metrics/points", json=four)
    assert got.status_code == 413
    assert got.json()["message"] == "points: at most 3 points per request, got 4"
    big = client.post(
        "/api/v1/metrics/points", json={"name": "x" * 100, "time": T, "value": 1, "p": "y" * 2000}
    )
    assert big.status_code == 413
    bad = client.post(
        "/api/v1/metrics/points", content=b"[{", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("body is not valid JSON")
    zipped = client.post(
        "/api/v1/metrics/points",
        content=gzip.compress(orjson.dumps({"name": "cpu", "time": T, "value": 1})),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert zipped.json() == {"accepted": 1}
    assert total_count(client, "cpu") == 1


def test_the_app_runs_compaction_in_the_background(make_client: MakeClient) -> None:
    # The test clock stands at 2026-11-21T01:00Z: a point of 2026-11-01 is past raw retention.
    client = make_client(metric_compaction_seconds=0.05)
    compactor = services_of(client).metric_compactor
    assert compactor is not None
    body = {"name": "old", "time": "2026-11-01T00:00:30Z", "value": 1}
    assert client.post("/api/v1/metrics/points", json=body).status_code == 200
    seen = compactor.runs
    deadline = time.monotonic() + 10
    while compactor.runs < seen + 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert compactor.runs >= seen + 2
    store = store_of(client)
    assert series_summary(store, "default", "old", 0, 0, 2 * T, 60) == {}
    assert len(series_summary(store, "default", "old", 60, 0, 2 * T, 60)) == 1


_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TIMES = st.one_of(
    st.integers(min_value=-5, max_value=253_402_300_800),
    st.floats(min_value=-1.0, max_value=1e12, allow_nan=False),
    st.sampled_from([T, 1.5e-7, 2.5e-6, 253_402_300_799.9999995, 9_007_199_254.740993]),
)
_VALUES = st.one_of(_INT64, st.floats(allow_nan=False), st.sampled_from([-1e308, 1.8e308]))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), times=st.lists(_TIMES, min_size=1, max_size=12))
def test_a_series_in_columns_reads_like_the_same_points_one_by_one(
    data: st.DataObject, times: list[float]
) -> None:
    # Whole columns of numbers are converted at once; this pins them to the per-point rules.
    values = data.draw(st.lists(_VALUES, min_size=len(times), max_size=len(times)))
    columns = {"name": "cpu", "tags": {"host": "a"}, "times": times, "values": values}
    points = [
        {"name": "cpu", "tags": {"host": "a"}, "time": t, "value": v}
        for t, v in zip(times, values, strict=True)
    ]
    outcomes: list[tuple[Any, ...] | None] = []
    for body in (columns, points):
        try:
            batch = parse_points(orjson.dumps(body), 1_000)
        except InvalidInput:
            outcomes.append(None)
            continue
        outcomes.append(
            (
                batch.series,
                batch.series_index.to_pylist(),
                batch.times_us.to_pylist(),
                batch.values.to_pylist(),
            )
        )
    assert outcomes[0] == outcomes[1]
