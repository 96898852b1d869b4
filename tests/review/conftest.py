"""The API client fixtures of tests/api (both backends), and a valid sample body."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import client, make_client

__all__ = ["client", "make_client", "sample"]


def sample(event_id: str = "e1", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "pipeline": "market_signals",
        "event_id": event_id,
        "signal": "sales_activity",
        "record": {"store": "S-12", "sku": "A-1", "units": 3, "price": 9.5},
        "context": {"source": "pos", "enriched_by": "model-v3"},
        "sampled_at": "2026-11-21T00:30:00Z",
    }
    out.update(extra)
    return out
