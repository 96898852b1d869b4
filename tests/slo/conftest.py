"""The API client fixtures of tests/api (both backends), and helpers to report what SLOs
read: metric points of a pipeline, runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from starlette.testclient import TestClient

from tests.api.conftest import as_json, client, make_client
from tests.conftest import run

__all__ = ["client", "events", "latencies", "make_client", "post_runs"]


def _post(client: TestClient, body: list[dict[str, Any]]) -> None:
    got = client.post("/api/v1/metrics/points", json=body)
    assert got.status_code == 200, got.text


def latencies(
    client: TestClient, at: datetime, values: Sequence[float], pipeline: str = "market_signals"
) -> None:
    """End-to-end latencies of events that finished at ``at``."""
    _post(
        client,
        [
            {
                "name": "flow.e2e_latency_ms",
                "tags": {"pipeline": pipeline, "signal": "sales_activity"},
                "times": [at.timestamp()] * len(values),
                "values": list(values),
            }
        ],
    )


def events(
    client: TestClient, counts: dict[datetime, float], pipeline: str = "market_signals"
) -> None:
    """flow.events counter increments at the given times."""
    _post(
        client,
        [
            {
                "name": "flow.events",
                "tags": {"pipeline": pipeline, "signal": "field_reports"},
                "times": [t.timestamp() for t in counts],
                "values": list(counts.values()),
            }
        ],
    )


def post_runs(
    client: TestClient, runs: Sequence[tuple[datetime, str]], pipeline: str = "load_sales"
) -> None:
    """Runs of the pipeline (env prod) ending at each time with each status."""
    body = [
        as_json(
            run(
                pipeline,
                batch_id=f"b{i}",
                status=status,
                started_at=end - timedelta(minutes=5),
                ended_at=end,
            )
        )
        for i, (end, status) in enumerate(runs)
    ]
    got = client.post("/api/v1/runs", json=body)
    assert got.status_code == 200, got.text
