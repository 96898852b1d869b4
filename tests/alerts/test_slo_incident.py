"""The slo_burn_rate and incident rule kinds: the pure evaluation, then on the tick of the
real service (both backends) with SLOs read from metric points, and incidents as their
service reports them, notified to a real HTTP receiver. The clock is fixed by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowdeck.alerts import engine
from flowdeck.alerts.engine import Facts, IncidentFacts, SloFacts
from flowdeck.alerts.rules import parse_rule
from flowdeck.errors import InvalidInput
from flowdeck.slo.model import parse_slo
from flowdeck.slo.service import SloService
from flowdeck.store.sql import SqlStore
from tests.alerts.conftest import Rig
from tests.metrics_api.conftest import batch_of

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def slo_facts(burns: dict[str, float | None], name: str = "lat") -> SloFacts:
    rates: dict[str, float | None] = {"5m": None, "30m": None, "1h": None, "6h": None, **burns}
    return SloFacts("default", name, "market_signals", 99.0, rates, {"slo_kind": "latency"})


def incident(iid: str = "i1", *, open_: bool = True, kind: str = "queue_overflow") -> IncidentFacts:
    return IncidentFacts(
        "default",
        iid,
        "market_signals",
        kind,
        "critical",
        open_,
        f"enrich queue above capacity ({iid})",
        NOW - timedelta(minutes=5),
        "enrich",
    )


def test_burn_rate_fires_only_when_both_windows_burn() -> None:
    rule = parse_rule({"name": "page", "kind": "slo_burn_rate"})  # 14.4 over 1h and 5m
    cases: list[tuple[dict[str, float | None], bool]] = [
        ({"1h": 20.0, "5m": 30.0}, True),
        ({"1h": 14.4, "5m": 14.4}, True),  # at the factor counts
        ({"1h": 20.0, "5m": 2.0}, False),  # it stopped: the short window recovered
        ({"1h": 3.0, "5m": 50.0}, False),  # a blip: not significant over the hour
        ({"1h": 20.0, "5m": None}, False),  # no events in the short window
    ]
    for burns, fires in cases:
        (obs,) = engine.evaluate(rule, Facts(slos=[slo_facts(burns)]), NOW)
        assert obs.active is fires, burns
    (obs,) = engine.evaluate(rule, Facts(slos=[slo_facts({"1h": 20.0, "5m": 30.0})]), NOW)
    assert obs.summary == (
        "SLO lat (market_signals, 99 %) burns its error budget 20.0× over 1h and 30.0× over "
        "5m (alert at 14.4×); at this pace the 30-day budget lasts 36.0 h"
    )
    assert obs.value == 20.0
    assert obs.labels["slo"] == "lat" and obs.labels["pipeline"] == "market_signals"
    assert obs.labels["slo_kind"] == "latency" and obs.labels["kind"] == "slo_burn_rate"
    assert obs.subject == {"project": "default", "slo": "lat", "pipeline": "market_signals"}


def test_the_ticket_pair_and_the_slo_glob() -> None:
    ticket = parse_rule(
        {
            "name": "ticket",
            "kind": "slo_burn_rate",
            "factor": 6,
            "long_window": "6h",
            "short_window": "30m",
            "slo": "lat*",
        }
    )
    facts = Facts(
        slos=[
            slo_facts({"6h": 7.0, "30m": 6.5}, "latency-95"),
            slo_facts({"6h": 9.0, "30m": 9.0}, "throughput"),
        ]
    )
    (obs,) = engine.evaluate(ticket, facts, NOW)
    assert obs.labels["slo"] == "latency-95" and obs.active


def test_burn_rate_rules_are_checked() -> None:
    with pytest.raises(InvalidInput, match=r"rule\[r\]\.short_window: must be shorter"):
        parse_rule({"name": "r", "kind": "slo_burn_rate", "short_window": "6h"})
    with pytest.raises(InvalidInput, match=r"rule\[r\]\.long_window: must be one of 5m, 30m"):
        parse_rule({"name": "r", "kind": "slo_burn_rate", "long_window": "2h"})
    with pytest.raises(InvalidInput, match=r"rule\[r\]\.n: is not a parameter of slo_burn"):
        parse_rule({"name": "r", "kind": "slo_burn_rate", "n": 2})
    with pytest.raises(InvalidInput, match=r"rule\[r\]\.selector\.env: does not apply to inc"):
        parse_rule({"name": "r", "kind": "incident", "selector": {"env": "prod"}})
    rule = parse_rule({"name": "r", "kind": "slo_burn_rate", "long_window": "1d"})
    assert rule.out()["long_window"] == "24h"
    assert parse_rule(rule.out()).params == rule.params  # what the store keeps reads back


def test_one_incident_alert_per_incident_filtered_by_kind() -> None:
    rule = parse_rule({"name": "inc", "kind": "incident", "incident_kind": "queue_*"})
    facts = Facts(
        incidents=[incident("i1"), incident("i2", open_=False), incident("i3", kind="stalled")]
    )
    obs = engine.evaluate(rule, facts, NOW)
    assert [(o.subject["incident_id"], o.active) for o in obs] == [("i1", True), ("i2", False)]
    assert obs[0].labels["incident_kind"] == "queue_overflow"
    assert obs[0].labels["incident_severity"] == "critical"
    assert obs[0].labels["stage"] == "enrich"
    assert obs[0].summary == "enrich queue above capacity (i1)"
    assert obs[0].fingerprint != obs[1].fingerprint


# -- on the service's tick, both backends ---------------------------------------------------
def latencies(rig: Rig, at: datetime, values: Sequence[float]) -> None:
    points = [
        {
            "name": "flow.e2e_latency_ms",
            "tags": {"pipeline": "market_signals", "signal": "sales_activity"},
            "times": [at.timestamp()] * len(values),
            "values": list(values),
        }
    ]
    rig.writer.submit_points(batch_of(points), 10_000).result()


def put_slo(rig: Rig, slos: SloService, **body: Any) -> None:
    slo = parse_slo(
        {"pipeline": "market_signals", "kind": "latency", "objective": 99, "threshold_ms": 2000}
        | body
    )
    rig.writer.submit_call(lambda: slos.db.put_slo(slo, rig.clock())).result()


def test_a_fast_burn_pages_and_resolves_when_it_stops(rig: Rig) -> None:
    assert isinstance(rig.store, SqlStore)
    slos = SloService(rig.store, cache_s=0)
    rig.alerts.slo_facts = slos.facts
    rig.webhook()
    rig.rule(name="slo-page", kind="slo_burn_rate", severity="critical")
    put_slo(rig, slos, name="signals-latency")
    # Two minutes ago, half of 200 events took 5 s: 50 % bad against 1 % allowed.
    latencies(rig, rig.clock.now - timedelta(minutes=2), [300.0] * 100 + [5000.0] * 100)
    rig.tick()
    rig.deliver()
    (got,) = rig.receiver.wait_for(1, "/hook")
    body = got.json()
    assert body["status"] == "firing"
    assert body["rule"]["runbook_url"] == "http://flowdeck.test/runbook#slo_burn_rate"
    (alert,) = body["alerts"]
    assert alert["summary"].startswith(
        "SLO signals-latency (market_signals, 99 %) burns its error budget 50.0× over 1h "
        "and 50.0× over 5m (alert at 14.4×)"
    )
    assert alert["subject"]["slo"] == "signals-latency"
    # Ten minutes on, the short window holds no more bad events: the burn stopped.
    rig.clock.now += timedelta(minutes=10)
    latencies(rig, rig.clock.now - timedelta(minutes=1), [300.0] * 50)
    rig.tick()
    rig.deliver()
    got = rig.receiver.wait_for(2, "/hook")[1].json()
    assert got["status"] == "resolved"
    (current,) = rig.alerts.db.alerts(states=("resolved",))
    history = rig.alerts.db.history(current.fingerprint)
    assert sorted((h["from"], h["to"]) for h in history) == [
        ("firing", "resolved"),
        ("inactive", "firing"),
    ]


def test_a_deleted_slo_resolves_its_alert_and_no_source_changes_nothing(rig: Rig) -> None:
    assert isinstance(rig.store, SqlStore)
    slos = SloService(rig.store, cache_s=0)
    rig.rule(name="slo-page", kind="slo_burn_rate", channels=[])
    put_slo(rig, slos, name="lat")
    latencies(rig, rig.clock.now - timedelta(minutes=1), [5000.0] * 10)
    rig.tick()
    assert rig.alerts.db.alerts(states=("firing",)) == []  # no source set yet: nothing
    rig.alerts.slo_facts = slos.facts
    rig.tick()
    assert len(rig.alerts.db.alerts(states=("firing",))) == 1
    rig.alerts.slo_facts = None
    rig.tick()
    assert len(rig.alerts.db.alerts(states=("firing",))) == 1  # unknown is not resolved
    rig.alerts.slo_facts = slos.facts
    rig.writer.submit_call(lambda: slos.db.delete_slo("lat")).result()
    rig.tick()
    assert rig.alerts.db.alerts(states=("firing",)) == []
    assert len(rig.alerts.db.alerts(states=("resolved",))) == 1


def test_incidents_notify_one_alert_each_and_resolve_on_close(rig: Rig) -> None:
    reported: list[IncidentFacts] = [incident("i1"), incident("i2", kind="stalled")]
    rig.alerts.incident_facts = lambda now: list(reported)
    rig.webhook()
    rig.rule(name="incidents", kind="incident", severity="critical", group_by=["incident_id"])
    rig.tick()
    rig.deliver()
    got = rig.receiver.wait_for(2, "/hook")
    assert sorted(r.json()["alerts"][0]["subject"]["incident_id"] for r in got) == ["i1", "i2"]
    assert {r.json()["status"] for r in got} == {"firing"}
    # i1 closes; i2 is no longer reported at all (forgotten): both resolve.
    reported[:] = [incident("i1", open_=False)]
    rig.clock.now += timedelta(minutes=1)
    rig.tick()
    rig.deliver()
    got = rig.receiver.wait_for(4, "/hook")[2:]
    assert {r.json()["status"] for r in got} == {"resolved"}
    assert rig.alerts.db.alerts(states=("firing",)) == []
