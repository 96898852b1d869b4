"""The streaming pipeline's driver against a real server (real sockets: the driver only talks
to flowdeck over HTTP, through the SDK and the public API, as a pipeline would)."""

from __future__ import annotations

import logging
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from flowdeck.simulate.stream import DEFAULT_CONFIG, SIGNALS
from flowdeck.simulate.stream_driver import Api, StreamDriver, local_url, slo_definitions
from tests.servers import FLOWDECK, ServerProcess, threaded_server

STAGES = [s.name for s in DEFAULT_CONFIG.stages]


def query(base: str, metric: str, aggregation: str, group_by: list[str], start: datetime) -> Any:
    res = httpx2.post(
        f"{base}/api/v1/metrics/query",
        json={
            "metric": metric,
            "aggregation": aggregation,
            "group_by": group_by,
            "filters": [{"tag": "pipeline", "value": "market_signals"}],
            "start": start.isoformat(),
            "end": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
            "step": "1m",
        },
        timeout=10,
    )
    assert res.status_code == 200, res.text
    return res.json()["series"]


def totals(series: Any, key: str) -> dict[str, float]:
    return {s["tags"][key]: sum(v for _, v in s["points"] if v is not None) for s in series}


def test_driver_reports_history_and_live_ticks_through_the_api(db_url: str) -> None:
    with threaded_server(db_url) as base:
        started = datetime.now(UTC)
        driver = StreamDriver(
            base,
            seed=7,
            speed=10,
            clock=lambda: datetime.now(UTC),
            backfill=timedelta(minutes=20),
            tick_s=0.5,
        )
        driver.start()
        try:
            deadline = time.monotonic() + 60
            backfill_ticks = 20 * 60 // 10
            while driver.ticks < backfill_ticks + 4 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert driver.ticks >= backfill_ticks + 4, "the driver never went live"
        finally:
            driver.stop()
        assert driver.events_reported > 0
        since = started - timedelta(minutes=25)

        processed = totals(query(base, "flow.processed", "sum", ["stage"], since), "stage")
        assert sorted(processed) == sorted(STAGES)
        assert all(n > 0 for n in processed.values())
        # Nothing lost on the way: every finished event the driver counted is stored.
        events = totals(query(base, "flow.events", "sum", ["signal"], since), "signal")
        assert sorted(events) == sorted(SIGNALS)
        assert sum(events.values()) == driver.events_reported
        assert processed["store"] == driver.events_reported

        depth = query(base, "flow.queue_depth", "max", ["stage"], since)
        assert sorted(s["tags"]["stage"] for s in depth) == sorted(STAGES)
        # History: points from the start of the backfill, well before the driver started.
        first = min(
            datetime.fromisoformat(p[0]) for s in depth for p in s["points"] if p[1] is not None
        )
        assert first <= started - timedelta(minutes=18)

        e2e = query(base, "flow.e2e_latency_ms", "count", ["signal"], since)
        assert sorted(s["tags"]["signal"] for s in e2e) == sorted(SIGNALS)
        p95 = query(base, "flow.e2e_latency_ms", "p95", [], since)
        values = [v for s in p95 for _, v in s["points"] if v is not None]
        assert values and min(values) > 100  # a model call takes a few hundred ms
        stage_latency = query(base, "flow.stage_latency_ms", "count", ["stage"], since)
        assert sorted(s["tags"]["stage"] for s in stage_latency) == sorted(STAGES)

        # The declarations and review samples went through the public API as well.
        flow = httpx2.get(f"{base}/api/v1/flows/market_signals", timeout=10)
        assert flow.status_code == 200, flow.text
        assert [s["name"] for s in flow.json()["stages"]] == STAGES
        for name in slo_definitions(DEFAULT_CONFIG):
            res = httpx2.get(f"{base}/api/v1/slos/{name}", timeout=10)
            assert res.status_code == 200, (name, res.text)
        assert driver.review_offered > 0
        res = httpx2.get(
            f"{base}/api/v1/review/samples",
            params={"pipeline": "market_signals", "status": "pending"},
            timeout=10,
        )
        assert res.status_code == 200, res.text
        assert res.json()["total"] == driver.review_offered  # one sample per sampled event
        sample = res.json()["items"][0]
        assert sample["signal"] in SIGNALS
        assert sample["event_id"].split("-")[1] == sample["signal"]
        assert sample["record"]["enrichment"]["confidence"] > 0
        assert sample["context"]["pipeline"] == "market_signals"


def test_api_logs_a_missing_endpoint_once_and_waits_before_retrying(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    with threaded_server(f"duckdb://{tmp_path / 'f.duckdb'}") as base:
        api = Api(base, retry_s=30, monotonic=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="flowdeck.demo.stream"):
            assert not api.call("PUT", "/api/v1/not-yet/x", {"a": 1})
            assert not api.due("PUT /api/v1/not-yet/x")
            now[0] = 31.0
            assert api.due("PUT /api/v1/not-yet/x")
            assert not api.call("PUT", "/api/v1/not-yet/x", {"a": 1})
        assert len(caplog.records) == 1
        assert "not there yet (HTTP 404)" in caplog.records[0].getMessage()
        # A body the server refuses is reported with its message, once.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="flowdeck.demo.stream"):
            assert not api.call("POST", "/api/v1/metrics/points", [{"name": "x"}], route="p")
        assert "refused with HTTP 422" in caplog.records[0].getMessage()
    # Nobody there at all: unreachable, not an exception.
    down = Api(base, retry_s=30, timeout=1)
    assert not down.call("PUT", "/api/v1/flows/x", {})


def test_local_url_reaches_a_wildcard_bind_on_loopback() -> None:
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert local_url("::", 8000) == "http://[::1]:8000"
    assert local_url("127.0.0.1", 9) == "http://127.0.0.1:9"
    assert local_url("flowdeck.internal", 80) == "http://flowdeck.internal:80"


@pytest.mark.slow
def test_flowdeck_demo_plays_the_stream_beside_the_batch_estate(tmp_path: Path) -> None:
    server = ServerProcess(
        "demo",
        "--data-dir",
        str(tmp_path),
        "--days",
        "2",
        "--seed",
        "3",
        "--speed",
        "20",
        env={"FLOWDECK_DATABASE_URL": ""},
    )
    try:
        server.wait_healthy(timeout=120)
        with httpx2.Client(base_url=server.base, timeout=30) as client:
            deadline = time.monotonic() + 90
            live: dict[str, Any] = {}
            while time.monotonic() < deadline:
                res = client.get("/api/v1/flows/market_signals/live")
                if res.status_code == 200:
                    live = res.json()
                    if (
                        live["events_processed"] > 0
                        and live["events_last_hour"] > 0
                        and live["e2e_latency_ms"]["p95"] is not None
                    ):
                        break
                time.sleep(0.5)
            assert live, "the flow was never declared"
            assert [s["name"] for s in live["stages"]] == STAGES
            assert live["events_processed"] > 0
            assert live["e2e_latency_ms"]["p95"] is not None
            # The batch estate is still there, and the demo's rules include the new kinds.
            assert client.get("/api/v1/batches?since=7d").json()["items"]
            kinds = {r["kind"] for r in client.get("/api/v1/alert-rules").json()["items"]}
            assert {"slo_burn_rate", "incident", "consecutive_failures"} <= kinds
    finally:
        log = server.stop()
    assert "Traceback" not in log


def test_demo_help_names_the_stream_options() -> None:
    out = subprocess.run(
        [FLOWDECK, "demo", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for option in ("--seed", "--speed", "--stream / --no-stream", "market_signals"):
        assert option in out
