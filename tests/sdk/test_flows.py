"""flowdeck.sdk.flows against a real server: declare a flow (and be told what is wrong with a
bad declaration), report stages and finished events, and read them back in the live view."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from flowdeck.sdk import Client
from tests.servers import free_port, server_on


@pytest.fixture
def base(tmp_path: Path) -> Iterator[str]:
    with server_on(free_port(), f"duckdb://{tmp_path / 'flowdeck.duckdb'}") as url:
        yield url


@pytest.fixture
def client(base: str, tmp_path: Path) -> Iterator[Client]:
    c = Client(base, spool_dir=tmp_path / "spool")
    yield c
    c.close()


def test_declare_report_and_read_back(base: str, client: Client) -> None:
    flow = client.flow("market_signals")
    stored = flow.declare(
        stages=["ingest", {"name": "enrich", "queue_capacity": 100, "capacity_per_s": 5}],
        signals=["sales_activity"],
        title="Market signals",
        thresholds={"queue_fill": {"red": 0.95}},
        review_rate=0.02,
    )
    assert stored is not None
    assert [s["name"] for s in stored["stages"]] == ["ingest", "enrich"]
    assert stored["thresholds"]["queue_fill"] == {"orange": 0.5, "red": 0.95}
    assert stored["review_rate"] == 0.02

    now = int(time.time())
    enrich = flow.stage("enrich")
    for second in range(now - 59, now + 1):
        flow.stage("ingest").report(arrivals=4, processed=4, time=second)
        enrich.report(arrivals=4, processed=3, failed=0, time=second)
    enrich.report(queue_depth=60, latency_ms=[200.0, 300.0], time=now)
    flow.finished("sales_activity", latency_ms=[900.0] * 30, time=now)
    flow.finished("sales_activity", count=150, time=now - 10)
    assert client.flush(10)

    live = httpx2.get(f"{base}/api/v1/flows/market_signals/live", timeout=30).json()
    stages = {s["name"]: s for s in live["stages"]}
    assert stages["ingest"]["arrival_rate"] == 4.0
    assert stages["enrich"]["processed_rate"] == 3.0
    assert stages["enrich"]["failed_rate"] == 0.0
    assert stages["enrich"]["queue_depth"] == 60.0
    assert stages["enrich"]["light"] == "orange"  # 60 % full, 80 % load
    assert live["events_processed"] == 180
    assert live["signals"][0]["signal"] == "sales_activity"
    assert live["e2e_latency_ms"]["p50"] == pytest.approx(900, rel=0.01)


def test_a_bad_declaration_raises_naming_field_and_rule(client: Client) -> None:
    flow = client.flow("p")
    with pytest.raises(ValueError, match="must be unique") as caught:
        flow.declare(stages=["a", "a"])
    assert str(caught.value) == "flow 'p': stages[1].name: must be unique; 'a' is also stages[0]"


def test_declare_while_flowdeck_is_down_logs_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = Client(f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path / "spool")
    try:
        with caplog.at_level(logging.WARNING, logger="flowdeck.sdk"):
            assert down.flow("p").declare(stages=["a"], timeout=2) is None
        assert "could not declare flow 'p'" in caplog.text
        down.flow("p").stage("a").report(arrivals=1)  # buffered, never raises
    finally:
        down.close(0.5)
