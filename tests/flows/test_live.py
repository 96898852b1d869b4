"""The live view's arithmetic against hand-computed cases, on both backends: points go in
through POST /api/v1/metrics/points, the view comes out of GET /flows/{pipeline}/live (and
of ``live_view`` for the window's edges)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from flowdeck.api.responses import JSON
from flowdeck.flows.live import assess_stage, live_view
from flowdeck.flows.model import StageSpec, Thresholds, parse_flow
from flowdeck.store.metrics_sql import MetricsSql
from tests.api.conftest import services_of
from tests.conftest import FixedClock
from tests.flows.conftest import declaration, series

API = "/api/v1/flows"


def post(client: TestClient, *items: dict[str, Any]) -> None:
    answer = client.post("/api/v1/metrics/points", json=list(items))
    assert answer.status_code == 200, answer.text


def every_second(start: float, end: float) -> list[float]:
    """Whole seconds in [start, end)."""
    return [float(t) for t in range(int(start), int(end))]


def live(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get(f"{API}/ms/live", params=params)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def stage(view: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in view["stages"] if s["name"] == name)
    return found


@pytest.fixture
def declared(client: TestClient) -> TestClient:
    assert client.put(f"{API}/ms", json=declaration()).status_code == 201
    return client


def test_rates_queues_percentiles_lights_by_hand(declared: TestClient, clock: FixedClock) -> None:
    client = declared
    now = clock.now.timestamp()
    last_minute = every_second(now - 60, now)  # 60 reports, the newest 1 s ago
    post(
        client,
        # ingest: 10 arrive and 10 leave each second; 3 wait (capacity 100).
        series("flow.arrivals", last_minute, [10] * 60, stage="ingest"),
        series("flow.processed", last_minute, [10] * 60, stage="ingest"),
        series("flow.queue_depth", [now - 20, now - 1], [50, 3], stage="ingest"),
        # A point just before the window does not count.
        series("flow.arrivals", [now - 61], [6000], stage="ingest"),
        # enrich: 10 arrive, 4 done and 0.5 failing a second; capacity 5/s, queue 1000.
        series("flow.arrivals", last_minute, [10] * 60, stage="enrich"),
        series("flow.processed", last_minute, [4] * 60, stage="enrich"),
        series("flow.failed", last_minute[::2], [1] * 30, stage="enrich"),
        # Two workers' queues: their newest samples add up (600 + 250 = 850 of 1000).
        series("flow.queue_depth", [now - 30, now - 3], [100, 600], stage="enrich", worker="1"),
        series("flow.queue_depth", [now - 2], [250], stage="enrich", worker="2"),
        series("flow.stage_latency_ms", [now - 5] * 20, [100.0] * 19 + [900.0], stage="enrich"),
        # store: reports nothing at all.
        # Events finished: 180 sales_activity and 60 field_reports in the minute.
        series("flow.events", last_minute, [3] * 60, signal="sales_activity"),
        series("flow.events", last_minute[::3], [3] * 20, signal="field_reports"),
        # End-to-end latencies: 90 × 100 ms and 10 × 4000 ms for sales, 10 × 50 ms field.
        series(
            "flow.e2e_latency_ms",
            [now - 10] * 100,
            [100.0] * 90 + [4000.0] * 10,
            signal="sales_activity",
        ),
        series("flow.e2e_latency_ms", [now - 10] * 10, [50.0] * 10, signal="field_reports"),
        # Another pipeline's points are not ours.
        series("flow.arrivals", last_minute, [1000] * 60, pipeline="other", stage="ingest"),
    )
    view = live(client)
    assert view["as_of"] == (clock.now - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert view["window_end"] == clock.now.isoformat().replace("+00:00", "Z")
    assert view["stale"] is False
    assert view["window_s"] == 60

    ingest = stage(view, "ingest")
    assert ingest["arrival_rate"] == 10.0
    assert ingest["processed_rate"] == 10.0
    assert ingest["failed_rate"] is None  # never reported
    assert ingest["queue_depth"] == 3.0
    assert ingest["queue_fill"] == 0.03
    assert ingest["load"] == 10 / 50
    assert (ingest["light"], ingest["reasons"]) == ("green", [])

    enrich = stage(view, "enrich")
    assert enrich["arrival_rate"] == 10.0
    assert enrich["processed_rate"] == 4.0
    assert enrich["failed_rate"] == 0.5
    assert enrich["queue_depth"] == 850.0
    assert enrich["queue_fill"] == 0.85
    assert enrich["load"] == 2.0
    # The sketch answers the value at index floor(q × (n − 1)) of the sorted values, within
    # 1 %. 19 × 100 ms and one 900 ms: index floor(0.95 × 19) = 18 → 100 ms.
    assert enrich["latency_p95_ms"] == pytest.approx(100, rel=0.01)
    assert enrich["light"] == "red"
    assert enrich["reasons"] == [
        "load 200 % of capacity (10.0/s arriving, capacity 5.00/s; red at 100 %)",
        "11.1 % of events failed (red at 5 %)",
        "queue 85 % full (850 of 1,000 events; orange at 50 %)",
    ]
    assert enrich["bottleneck"] is True
    assert view["bottleneck"] == "enrich"

    store = stage(view, "store")
    assert store["arrival_rate"] is None and store["queue_depth"] is None
    assert (store["light"], store["reasons"]) == ("orange", ["no data in the last 60 s"])

    assert view["events_processed"] == 240
    assert view["events_last_hour"] == 240
    assert view["speed"] == 4.0
    assert view["backlog"] == 853.0
    # 110 latencies, sorted: 10 × 50 (index 0-9), 90 × 100 (10-99), 10 × 4000 (100-109).
    # p50: index floor(54.5) = 54 → 100 ms; p95: floor(103.55) = 103 → 4000; p99 → 4000.
    e2e = view["e2e_latency_ms"]
    assert e2e["p50"] == pytest.approx(100, rel=0.01)
    assert e2e["p95"] == pytest.approx(4000, rel=0.01)
    assert e2e["p99"] == pytest.approx(4000, rel=0.01)
    signals = {s["signal"]: s for s in view["signals"]}
    assert list(signals) == ["sales_activity", "field_reports"]
    sales, field = signals["sales_activity"], signals["field_reports"]
    assert (sales["events"], sales["rate"], sales["share"]) == (180, 3.0, 0.75)
    assert (field["events"], field["rate"], field["share"]) == (60, 1.0, 0.25)
    # sales: 90 × 100, 10 × 4000. p50: index 49 → 100; p95: index 94 → 4000.
    assert sales["latency_p50_ms"] == pytest.approx(100, rel=0.01)
    assert sales["latency_p95_ms"] == pytest.approx(4000, rel=0.01)
    assert field["latency_p99_ms"] == pytest.approx(50, rel=0.01)

    assert view["light"] == "red"
    assert view["reasons"] == [
        "enrich: load 200 % of capacity (10.0/s arriving, capacity 5.00/s; red at 100 %)",
        "enrich: 11.1 % of events failed (red at 5 %)",
        "end-to-end p95 4.0 s (orange at 2.0 s)",
        "enrich: queue 85 % full (850 of 1,000 events; orange at 50 %)",
        "store: no data in the last 60 s",
    ]


def test_the_window_ends_at_the_newest_report_not_the_clock(
    declared: TestClient, clock: FixedClock
) -> None:
    """The SDK sends every few seconds: the last 10 s have not arrived yet. The rate is read
    over the 60 s that did, not diluted by the 10 that did not."""
    client = declared
    now = clock.now.timestamp()
    reported = every_second(now - 80, now - 10)  # up to 11 s ago
    post(
        client,
        series("flow.arrivals", reported, [6] * 70, stage="ingest"),
        series("flow.processed", reported, [6] * 70, stage="ingest"),
        series("flow.events", reported, [2] * 70, signal="sales_activity"),
    )
    view = live(client)
    assert view["as_of"] == (clock.now - timedelta(seconds=11)).isoformat().replace("+00:00", "Z")
    assert view["data_age_s"] == 11.0
    assert view["window_end"] == (clock.now - timedelta(seconds=10)).isoformat().replace(
        "+00:00", "Z"
    )
    assert stage(view, "ingest")["arrival_rate"] == 6.0
    assert view["speed"] == 2.0
    assert view["events_processed"] == 120
    assert view["events_last_hour"] == 140
    # Over 5 minutes: 70 reports × 6 / 300 s.
    assert stage(live(client, window="5m"), "ingest")["arrival_rate"] == 70 * 6 / 300


def test_stale_data_and_no_data_light_orange(declared: TestClient, clock: FixedClock) -> None:
    client = declared
    never = live(client)
    assert never["as_of"] is None and never["stale"] is True
    assert never["light"] == "orange"
    assert never["reasons"] == ["no data in the last 24 h"]
    assert {s["light"] for s in never["stages"]} == {"orange"}
    assert never["speed"] is None and never["backlog"] is None

    now = clock.now.timestamp()
    old = every_second(now - 200, now - 150)  # the newest is 151 s old (stale after 120 s)
    post(
        client,
        series("flow.arrivals", old, [5] * 50, stage="ingest"),
        series("flow.queue_depth", [now - 151], [40], stage="ingest"),
    )
    view = live(client)
    assert view["stale"] is True
    assert view["data_age_s"] == 151.0
    assert view["window_end"] == clock.now.isoformat().replace("+00:00", "Z")
    assert view["reasons"] == ["no data for 3 min"]
    assert stage(view, "ingest")["arrival_rate"] == 0.0
    assert stage(view, "ingest")["queue_depth"] is None  # its newest sample is outside

    # A longer stale_after_s makes the same data fresh: the window then ends at it.
    settings = declaration(thresholds={"stale_after_s": 300})
    assert client.put(f"{API}/ms", json=settings).status_code == 200
    fresh = live(client)
    assert fresh["stale"] is False
    assert stage(fresh, "ingest")["arrival_rate"] == 50 * 5 / 60
    assert stage(fresh, "ingest")["queue_depth"] == 40.0


def test_a_stalled_stage_is_red_and_thresholds_are_configurable(
    declared: TestClient, clock: FixedClock
) -> None:
    client = declared
    now = clock.now.timestamp()
    minute = every_second(now - 60, now)
    post(
        client,
        series("flow.arrivals", minute, [10] * 60, stage="ingest"),
        series("flow.processed", minute, [0] * 60, stage="ingest"),
        series("flow.queue_depth", [now - 1], [85], stage="ingest"),
        series("flow.arrivals", minute, [1] * 60, stage="store"),
        series("flow.processed", minute, [1] * 60, stage="store"),
        series("flow.queue_depth", [now - 1], [7], stage="store"),
        series("flow.processed", minute, [0] * 60, stage="enrich"),
        series("flow.queue_depth", [now - 1], [3], stage="enrich"),
    )
    view = live(client)
    assert stage(view, "ingest")["reasons"] == [
        "stalled: 600 events arrived and none processed in 60 s",
        "queue 85 % full (85 of 100 events; orange at 50 %)",
    ]
    assert stage(view, "enrich")["reasons"] == [
        "stalled: 3 events waiting and none processed in 60 s"
    ]
    assert stage(view, "store")["light"] == "green"
    # Without flow.events, speed and events come from the last stage's processed.
    assert (view["speed"], view["events_processed"]) == (1.0, 60)
    assert view["backlog"] == 95.0
    assert view["bottleneck"] == "ingest"

    settings = declaration(
        thresholds={"queue_fill": {"red": 0.8}, "backlog": {"orange": 90, "red": 200}}
    )
    assert client.put(f"{API}/ms", json=settings).status_code == 200
    view = live(client)
    assert stage(view, "ingest")["reasons"][1] == (
        "queue 85 % full (85 of 100 events; red at 80 %)"
    )
    assert "backlog 95 events (orange at 90)" in view["reasons"]


def test_a_stage_latency_threshold_of_its_own(declared: TestClient, clock: FixedClock) -> None:
    """The flow's stage_latency_p95_ms applies to every stage; a stage's own replaces it."""
    client = declared
    settings = declaration(
        thresholds={"stage_latency_p95_ms": {"orange": 200, "red": 1000}},
        stages=[
            {"name": "ingest"},
            {"name": "enrich", "latency_p95_ms": {"orange": 3000}},  # red: off
        ],
    )
    assert client.put(f"{API}/ms", json=settings).status_code == 200
    now = clock.now.timestamp()
    post(
        client,
        series("flow.stage_latency_ms", [now - 3] * 2, [400.0, 400.0], stage="ingest"),
        series("flow.stage_latency_ms", [now - 3] * 2, [2500.0, 2500.0], stage="enrich"),
        series("flow.processed", [now - 3], [2], stage="enrich"),
    )
    view = live(client)
    ingest = stage(view, "ingest")
    assert ingest["latency_p95_ms"] == pytest.approx(400, rel=0.01)
    assert ingest["reasons"] == [
        f"p95 latency {ingest['latency_p95_ms']:.0f} ms (orange at 200 ms)"
    ]
    assert stage(view, "enrich")["light"] == "green"  # 2.5 s is below its own 3 s
    assert client.get(f"{API}/ms").json()["stages"][1]["latency_p95_ms"] == {
        "orange": 3000.0,
        "red": None,
    }


def test_trend_steps(declared: TestClient, clock: FixedClock) -> None:
    client = declared
    now = clock.now.timestamp()  # a whole minute: the trend's steps line up with it
    post(
        client,
        series("flow.events", every_second(now - 300, now), [2] * 300, signal="x"),
        series("flow.arrivals", every_second(now - 60, now), [3] * 60, stage="ingest"),
        series("flow.queue_depth", [now - 25, now - 22, now - 5], [10, 30, 7], stage="enrich"),
        series("flow.queue_depth", [now - 25], [100], stage="store"),
        series("flow.e2e_latency_ms", [now - 15] * 4, [10.0, 20.0, 30.0, 40.0], signal="x"),
    )
    trend = live(client, trend="5m")["trend"]
    assert trend["step_s"] == 10
    assert len(trend["times"]) == 30
    assert trend["times"][-1] == (clock.now - timedelta(seconds=10)).isoformat().replace(
        "+00:00", "Z"
    )
    assert trend["speed"] == [2.0] * 30
    assert trend["arrivals"] == [0.0] * 24 + [3.0] * 6
    # Per step, each series' mean, added over the stage's series, then over the stages.
    assert trend["queues"] == {
        "enrich": [None] * 27 + [20.0, None, 7.0],
        "store": [None] * 27 + [100.0, None, None],
    }
    assert trend["backlog"] == [None] * 27 + [120.0, None, 7.0]
    assert trend["e2e_p95_ms"][:28] == [None] * 28
    # Four values: rank 0.95 × 3 = 2.85; the sketch answers the value at index 2: 30 ms.
    assert trend["e2e_p95_ms"][28] == pytest.approx(30, rel=0.01)
    assert trend["e2e_p95_ms"][29] is None


def test_live_view_is_the_same_read_directly(declared: TestClient, clock: FixedClock) -> None:
    client = declared
    now = clock.now.timestamp()
    post(client, series("flow.arrivals", every_second(now - 30, now), [1] * 30, stage="ingest"))
    svc = services_of(client)
    assert isinstance(svc.store, MetricsSql) and svc.flows is not None
    spec = svc.flows.get("default", "ms")
    assert spec is not None
    view = live_view(svc.store, spec, clock.now, 30)
    assert view.stages[0].arrival_rate == 1.0
    assert orjson.loads(JSON(view.out()).body) == live(client, window="30")


@pytest.mark.parametrize(
    ("depth", "arrivals", "light"),
    [
        (49, 3.9, "green"),
        (50, 3.9, "orange"),
        (89, 4.0, "orange"),
        (90, 3.0, "red"),
        (10, 5.0, "red"),
        (None, None, "green"),
    ],
)
def test_assess_stage_boundaries(depth: float | None, arrivals: float | None, light: str) -> None:
    spec = StageSpec("s", queue_capacity=100, capacity_per_s=5)
    verdict = assess_stage(
        spec,
        Thresholds(),
        60,
        arrival_rate=arrivals,
        processed_rate=arrivals,
        failed_rate=None,
        queue_depth=depth,
        latency_p95_ms=None,
        reported=True,
    )
    assert verdict.light == light


def test_a_switched_off_threshold_never_lights() -> None:
    spec = parse_flow(
        {
            "stages": [{"name": "s", "queue_capacity": 10}],
            "thresholds": {"queue_fill": {"orange": None, "red": None}},
        },
        "p",
    )
    verdict = assess_stage(
        spec.stages[0],
        spec.thresholds,
        60,
        arrival_rate=1.0,
        processed_rate=1.0,
        failed_rate=None,
        queue_depth=10_000,
        latency_p95_ms=None,
        reported=True,
    )
    assert (verdict.light, verdict.reasons, verdict.queue_fill) == ("green", (), 1000.0)
