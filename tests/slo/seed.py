"""A believable week of SLO data for the browser test and the screenshots, reported through
the public API: a streaming pipeline's end-to-end latencies and events (with two
degradations, one of them now), and a batch pipeline's runs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx

SLOS: list[tuple[str, dict[str, Any]]] = [
    (
        "signals-latency",
        {
            "pipeline": "market_signals",
            "kind": "latency",
            "objective": 95,
            "threshold_ms": 2000,
            "description": "Signals reach the analysts within 2 s of arriving.",
        },
    ),
    (
        "signals-throughput",
        {
            "pipeline": "market_signals",
            "kind": "throughput",
            "objective": 99,
            "min_events": 300,
            "cycle": "5m",
            "window": "24h",
        },
    ),
    (
        "sales-success",
        {
            "pipeline": "load_sales",
            "env": "prod",
            "kind": "success_rate",
            "objective": 90,
            "window": "7d",
        },
    ),
    (
        "sales-freshness",
        {"pipeline": "load_sales", "kind": "freshness", "objective": 99, "max_age": "8h"},
    ),
]


def seed(base: str, now: datetime | None = None, days: int = 7) -> None:
    now = now or datetime.now(UTC)
    rng = random.Random(7)
    with httpx.Client(base_url=base, timeout=60) as http:
        for name, body in SLOS:
            http.put(f"/api/v1/slos/{name}", json=body).raise_for_status()
        start = now - timedelta(days=days)
        times: list[float] = []
        values: list[float] = []
        counts_t: list[float] = []
        counts_v: list[float] = []
        t = start
        while t < now:
            age_h = (now - t).total_seconds() / 3600
            # A slow model at enrich two days ago for 3 hours, and one starting 20 min ago.
            degraded = 46 <= age_h < 49 or age_h < 0.35
            n = rng.randint(30, 45)
            for _ in range(n):
                slow = rng.random() < (0.45 if degraded else 0.02)
                values.append(rng.uniform(2100, 6000) if slow else rng.uniform(200, 1500))
                times.append(t.timestamp() + rng.uniform(0, 299))
            counts_t.append(t.timestamp() + 150)
            counts_v.append(float(n * 10 if not degraded else n * 6))
            t += timedelta(minutes=5)
        for i in range(0, len(times), 50_000):
            http.post(
                "/api/v1/metrics/points",
                json=[
                    {
                        "name": "flow.e2e_latency_ms",
                        "tags": {"pipeline": "market_signals", "signal": "sales_activity"},
                        "times": times[i : i + 50_000],
                        "values": values[i : i + 50_000],
                    }
                ],
            ).raise_for_status()
        http.post(
            "/api/v1/metrics/points",
            json=[
                {
                    "name": "flow.events",
                    "tags": {"pipeline": "market_signals", "signal": "field_reports"},
                    "times": counts_t,
                    "values": counts_v,
                }
            ],
        ).raise_for_status()
        runs = []
        for i in range(days * 4):
            end = now - timedelta(hours=6 * i + 1)
            status = "FAILED" if i in (3, 4, 11) else "SUCCESS"
            runs.append(
                {
                    "run_id": f"sales-{i}",
                    "pipeline": "load_sales",
                    "batch_id": f"b{i}",
                    "env": "prod",
                    "status": status,
                    "started_at": (end - timedelta(minutes=20)).isoformat(),
                    "ended_at": end.isoformat(),
                    "rows_read": 1000,
                }
            )
        http.post("/api/v1/runs", json=runs).raise_for_status()
