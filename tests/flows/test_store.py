"""FlowStore on both backends: declare, read, list, replace (created_at kept), delete."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowdeck.errors import NotFound
from flowdeck.flows.model import FlowSpec, Limit, StageSpec, Thresholds, parse_flow
from flowdeck.flows.store import FlowStore
from flowdeck.store import Store
from flowdeck.store.sql import SqlStore
from tests.conftest import T0
from tests.flows.conftest import declaration


@pytest.fixture
def flows(store: Store) -> FlowStore:
    assert isinstance(store, SqlStore)
    return FlowStore(store)


def test_declare_read_list_replace_delete(flows: FlowStore) -> None:
    assert flows.get("default", "ms") is None
    assert flows.list() == []
    spec = parse_flow(
        declaration(thresholds={"queue_fill": {"red": 0.95}, "backlog": {"orange": 500}}), "ms"
    )
    stored, created = flows.put(spec, T0)
    assert created
    got = flows.get("default", "ms")
    assert got == stored
    assert got is not None
    assert got.stages == (
        StageSpec("ingest", 100, 50.0),
        StageSpec("enrich", 1000, 5.0),
        StageSpec("store", None, None),
    )
    assert got.signals == ("sales_activity", "field_reports")
    assert got.thresholds.queue_fill == Limit(0.5, 0.95)
    assert got.thresholds.backlog == Limit(500, None)
    assert got.thresholds.load == Thresholds().load
    assert got.review_rate == 0.01
    assert (got.created_at, got.updated_at) == (T0, T0)

    other = parse_flow({"project": "lab", "stages": [{"name": "only"}]}, "ms")
    flows.put(other, T0)
    assert [(f.project, f.pipeline) for f in flows.list()] == [("default", "ms"), ("lab", "ms")]
    assert [f.project for f in flows.list("lab")] == ["lab"]

    later = T0 + timedelta(hours=1)
    replaced, created = flows.put(parse_flow(declaration(title="Renamed"), "ms"), later)
    assert not created
    again = flows.get("default", "ms")
    assert again == replaced
    assert again is not None
    assert again.title == "Renamed"
    assert (again.created_at, again.updated_at) == (T0, later)
    assert again.thresholds == Thresholds()  # a replacement replaces everything

    flows.delete("default", "ms")
    assert flows.get("default", "ms") is None
    assert flows.get("lab", "ms") is not None
    with pytest.raises(NotFound, match="flow 'ms' not found"):
        flows.delete("default", "ms")
    with pytest.raises(NotFound, match="flow 'lab/nope' not found"):
        flows.delete("lab", "nope")


def test_a_flow_spec_round_trips_through_json(flows: FlowStore) -> None:
    spec = FlowSpec(
        project="default",
        pipeline="p",
        title="P",
        stages=(StageSpec("a"), StageSpec("b", 10, 2.5)),
        signals=("x",),
        thresholds=Thresholds(stage_latency_p95_ms=Limit(100, None), stale_after_s=30),
        review_rate=0.02,
        description="d",
    )
    stored, _ = flows.put(spec, T0)
    assert flows.get("default", "p") == stored
    assert stored.thresholds == spec.thresholds
    assert stored.stages == spec.stages
