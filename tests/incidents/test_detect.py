"""The pure detector against hand-made cases: when incidents open, update and close."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from flowdeck.incidents.detect import (
    DetectOptions,
    FlowSignals,
    Key,
    Outcome,
    Pending,
    SloSignal,
    StageSignal,
    detect,
    find_bottleneck,
)
from flowdeck.incidents.model import CLOSED, OPEN, Incident

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OPTIONS = DetectOptions(hold_s=120, calm_s=300, silent_s=300)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


Values = Mapping[str, float | int | datetime | None]


def stage(name: str, now: datetime, **values: float | int | datetime | None) -> StageSignal:
    """A stage that reported just now: 60 events in and out over the window by default."""
    fields: dict[str, object] = {
        "queue_capacity": 1000,
        "capacity_per_s": 2.0,
        "queue_depth": 10.0,
        "arrivals": 60.0,
        "processed": 60.0,
        "failed": 0.0,
        "latency_p95_ms": 200.0,
        "last_point_at": now,
    }
    fields.update(values)
    return StageSignal(name, **fields)  # type: ignore[arg-type]


def flow(now: datetime, **stages: Values) -> FlowSignals:
    """market_signals: ingest → validate → enrich → store, each overridable."""
    names = ("ingest", "validate", "enrich", "store")
    return FlowSignals(
        "default",
        "market_signals",
        tuple(stage(n, now, **stages.get(n, {})) for n in names),
        window_s=60,
        e2e_p95_ms=900.0,
        events=60.0,
    )


@dataclass
class World:
    """The service's side of the loop, in memory: open incidents and pending conditions."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    pending: Mapping[Key, Pending] = field(default_factory=dict)
    log: list[Outcome] = field(default_factory=list)

    def tick(
        self,
        now: datetime,
        flows: Sequence[FlowSignals],
        slos: Sequence[SloSignal] = (),
        options: DetectOptions = OPTIONS,
    ) -> Outcome:
        open_ones = [i for i in self.incidents.values() if i.state == OPEN]
        out = detect(flows, slos, open_ones, self.pending, now, options)
        for inc in out.changed:
            self.incidents[inc.id] = inc
        self.pending = out.pending
        self.log.append(out)
        return out

    def only(self) -> Incident:
        assert len(self.incidents) == 1, list(self.incidents.values())
        return next(iter(self.incidents.values()))


def overflowing(now: datetime, depth: float = 1500.0) -> FlowSignals:
    # enrich: 140/s... here 60 arrive a minute and 30 finish; its queue above 1,000.
    return flow(now, enrich={"queue_depth": depth, "arrivals": 120.0, "processed": 60.0})


def test_a_queue_overflow_opens_after_the_hold_time_and_not_before() -> None:
    world = World()
    for s in (0, 30, 60, 90, 115):
        out = world.tick(at(s), [overflowing(at(s))])
        assert not out.opened, s
    assert world.pending[("default", "market_signals", "queue_overflow", "enrich")].since == T0
    out = world.tick(at(120), [overflowing(at(120))])
    assert [i.kind for i in out.opened] == ["queue_overflow"]
    inc = out.opened[0]
    assert (inc.stage, inc.state, inc.started_at, inc.opened_at) == ("enrich", OPEN, T0, at(120))
    assert inc.severity == "error"
    assert [e.what for e in inc.timeline] == ["began", "opened"]
    assert inc.timeline[0].at == T0
    assert inc.timeline[1].text.startswith("Opened after 2 min: 1,500 events wait at enrich")
    # The summary says what, where, since when, the impact, the cause and the action.
    assert inc.summary.startswith(
        "Queue overflow at enrich in market_signals since 2026-11-23 12:00 UTC: 1,500 events "
        "wait at enrich, 1.5× its queue capacity of 1,000."
    )
    assert "Impact: 1,530 events waiting in market_signals (1,500 at enrich)" in inc.summary
    assert "end-to-end latency p95 900 ms" in inc.summary
    assert "Likely cause: enrich is the bottleneck: 1,500 events wait in its queue" in inc.summary
    assert "it finishes 1.0/s while 2.0/s arrive" in inc.cause
    assert inc.action.startswith("Add capacity to enrich")
    assert inc.numbers["backlog"] == 1530.0
    # Later ticks update it; they never open a second one.
    out = world.tick(at(125), [overflowing(at(125))])
    assert not out.opened and not out.news
    assert len(world.incidents) == 1


def test_a_condition_gone_before_the_hold_time_opens_nothing() -> None:
    world = World()
    for s in range(0, 1200, 60):
        # Above capacity one minute, under it the next: never for 2 minutes on end.
        above = (s // 60) % 2 == 0
        world.tick(at(s), [overflowing(at(s), 1500.0 if above else 500.0)])
    assert world.incidents == {}


def test_an_incident_closes_after_recovery_and_the_calm_period() -> None:
    world = World()
    for s in (0, 120):
        world.tick(at(s), [overflowing(at(s))])
    inc_id = world.only().id
    out = world.tick(at(180), [overflowing(at(180), 400.0)])
    inc = world.only()
    assert inc.state == OPEN and inc.recovering_since == at(180)
    assert inc_id in out.news
    assert inc.timeline[-1].what == "recovering"
    assert inc.timeline[-1].text == (
        "400 events wait at enrich, within its queue capacity of 1,000; closes after 5 min of calm"
    )
    for s in (240, 300, 420, 479):
        out = world.tick(at(s), [overflowing(at(s), 300.0)])
        assert not out.closed, s
    out = world.tick(at(480), [overflowing(at(480), 200.0)])
    assert [i.id for i in out.closed] == [inc_id]
    inc = world.only()
    assert (inc.state, inc.closed_at) == (CLOSED, at(480))
    assert [e.what for e in inc.timeline] == ["began", "opened", "recovering", "closed"]
    assert inc.timeline[-1].text == ("Calm for 5 min after recovering; the condition lasted 3 min")
    # Closed stays closed; the same condition later is a new incident after a new hold.
    world.tick(at(600), [overflowing(at(600))])
    assert len(world.incidents) == 1
    world.tick(at(720), [overflowing(at(720))])
    assert len(world.incidents) == 2


def test_a_relapse_in_the_calm_period_continues_the_same_incident() -> None:
    world = World()
    for s in (0, 120):
        world.tick(at(s), [overflowing(at(s))])
    for s, depth in ((180, 500.0), (240, 1500.0), (300, 400.0), (360, 1400.0), (420, 300.0)):
        out = world.tick(at(s), [overflowing(at(s), depth)])
        assert not out.closed and not out.opened
    inc = world.only()
    assert [e.what for e in inc.timeline] == [
        "began",
        "opened",
        "recovering",
        "relapsed",
        "recovering",
        "relapsed",
        "recovering",
    ]
    assert inc.recovering_since == at(420)
    world.tick(at(719), [overflowing(at(719), 300.0)])
    assert world.only().state == OPEN
    world.tick(at(720), [overflowing(at(720), 300.0)])
    assert world.only().state == CLOSED


def test_worsening_escalates_and_the_peak_is_noted() -> None:
    world = World()
    world.tick(at(0), [overflowing(at(0), 1200.0)])
    world.tick(at(120), [overflowing(at(120), 1200.0)])
    out = world.tick(at(150), [overflowing(at(150), 1700.0)])  # < 1.5 × 1,200: no news
    assert not out.news
    out = world.tick(at(180), [overflowing(at(180), 2500.0)])  # ≥ 2× capacity: critical
    inc = world.only()
    assert inc.id in out.news
    assert inc.severity == "critical"
    worsened = [e for e in inc.timeline if e.what == "worsened"]
    assert len(worsened) == 1
    assert worsened[0].text == (
        "2,500 events wait at enrich, 2.5× its queue capacity of 1,000; now critical"
    )
    world.tick(at(210), [overflowing(at(210), 3000.0)])
    world.tick(at(240), [overflowing(at(240), 2000.0)])
    world.tick(at(270), [overflowing(at(270), 800.0)])
    inc = world.only()
    peaks = [e for e in inc.timeline if e.what == "peak"]
    assert len(peaks) == 1
    assert (peaks[0].at, peaks[0].value) == (at(210), 3.0)
    assert peaks[0].text.startswith("3,000 events wait at enrich")
    assert (inc.peak, inc.peak_at) == (3.0, at(210))
    # Severity does not fall back while the incident lasts.
    assert inc.severity == "critical"


def test_the_likely_cause_names_the_bottleneck_stage() -> None:
    # validate's queue overflows, but enrich (fuller relative to its capacity) is the cause.
    def signals(now: datetime) -> FlowSignals:
        return flow(
            now,
            validate={"queue_depth": 1200.0},
            enrich={"queue_depth": 450.0, "queue_capacity": 200, "processed": 20.0},
        )

    assert find_bottleneck(signals(T0)) is not None
    assert find_bottleneck(signals(T0)).name == "enrich"  # type: ignore[union-attr]
    world = World()
    world.tick(at(0), [signals(at(0))])
    out = world.tick(at(120), [signals(at(120))])
    by_stage = {i.stage: i for i in out.opened}
    inc = by_stage["validate"]
    assert inc.bottleneck == "enrich"
    assert inc.cause.startswith("enrich is the bottleneck: 450 events wait in its queue")
    assert inc.cause.endswith("the queue at validate backs up behind it")
    assert inc.action.startswith("Relieve enrich first")
    assert "Likely cause: enrich is the bottleneck" in inc.summary
    # enrich itself overflows too: its own incident names itself.
    assert by_stage["enrich"].bottleneck == "enrich"


def test_bottleneck_without_queues_is_the_stage_furthest_behind() -> None:
    signals = flow(
        T0,
        validate={"queue_depth": None, "processed": 55.0},
        enrich={"queue_depth": None, "processed": 20.0},
        ingest={"queue_depth": None},
        store={"queue_depth": None},
    )
    assert find_bottleneck(signals).name == "enrich"  # type: ignore[union-attr]
    calm = flow(T0, **{n: {"queue_depth": 0.0} for n in ("ingest", "validate", "enrich", "store")})
    assert find_bottleneck(calm) is None


def test_a_stage_that_finishes_nothing_is_stalled() -> None:
    def stuck(now: datetime) -> FlowSignals:
        return flow(now, store={"queue_depth": 300.0, "arrivals": 50.0, "processed": 0.0})

    world = World()
    world.tick(at(0), [stuck(at(0))])
    assert not world.tick(at(60), [stuck(at(60))]).opened
    out = world.tick(at(120), [stuck(at(120))])
    [inc] = out.opened
    assert (inc.kind, inc.stage, inc.severity) == ("stalled_stage", "store", "critical")
    assert inc.title == "Stalled stage: store"
    assert "store finished no event in the last 60 s with 300 waiting" in inc.summary
    assert inc.action.startswith("Check store's workers")
    # Finishing again: recovering, then closed after the calm period.
    world.tick(at(180), [flow(at(180))])
    assert world.only().recovering_since == at(180)
    world.tick(at(480), [flow(at(480))])
    assert world.only().state == CLOSED


def test_a_stage_without_points_while_the_others_report_is_stalled() -> None:
    def quiet(now: datetime) -> FlowSignals:
        # validate's last point was at T0; the others report on.
        return flow(
            now,
            validate={
                "last_point_at": T0,
                "queue_depth": None,
                "arrivals": 0.0,
                "processed": 0.0,
            },
        )

    world = World()
    assert not world.tick(at(299), [quiet(at(299))]).opened
    out = world.tick(at(300), [quiet(at(300))])
    [inc] = out.opened
    assert (inc.kind, inc.stage, inc.started_at) == ("stalled_stage", "validate", T0)
    assert "No points from validate for 5 min" in inc.summary
    assert "validate sent no metric points since 2026-11-23 12:00 UTC" in inc.cause
    # Seconds of silence grow by themselves: that is not "worsened".
    out = world.tick(at(900), [quiet(at(900))])
    assert not out.news
    assert [e.what for e in world.only().timeline] == ["began", "opened"]


def test_a_pipeline_silent_everywhere_is_one_incident() -> None:
    quiet = {"last_point_at": T0, "queue_depth": None, "arrivals": 0.0, "processed": 0.0}
    names = ("ingest", "validate", "enrich", "store")
    world = World()
    out = world.tick(at(400), [flow(at(400), **dict.fromkeys(names, quiet))])
    [inc] = out.opened
    assert (inc.kind, inc.subject, inc.stage) == ("stalled_stage", "", None)
    assert inc.title == "market_signals stopped reporting"
    assert inc.started_at == T0
    # Reporting again: recovering.
    world.tick(at(500), [flow(at(500))])
    assert world.only().recovering_since == at(500)


def test_a_flow_that_never_reported_opens_nothing() -> None:
    never = {"last_point_at": None, "queue_depth": None, "arrivals": None, "processed": None}
    names = ("ingest", "validate", "enrich", "store")
    world = World()
    for s in (0, 300, 3600):
        world.tick(at(s), [flow(at(s), **dict.fromkeys(names, never))])
    assert world.incidents == {}


def slo(passing: bool, **values: object) -> SloSignal:
    fields: dict[str, object] = {
        "sli": 91.0 if not passing else 99.0,
        "budget_remaining": 40.0,
        "failing_since": at(-600) if not passing else None,
    }
    fields.update(values)
    return SloSignal(
        "default",
        "market_signals",
        "signals-latency",
        "latency",
        95.0,
        passing,
        **fields,  # type: ignore[arg-type]
    )


def test_a_missed_slo_opens_once_failing_for_the_hold_time() -> None:
    world = World()
    fresh = slo(False, failing_since=at(-60))
    assert not world.tick(at(0), [], [fresh]).opened
    out = world.tick(at(60), [], [fresh])
    [inc] = out.opened
    assert (inc.kind, inc.slo, inc.started_at, inc.severity) == (
        "missed_slo",
        "signals-latency",
        at(-60),
        "error",
    )
    assert inc.value is not None and abs(inc.value - 1.8) < 1e-9  # 9 % bad of 5 % allowed
    assert inc.summary.startswith(
        "SLO signals-latency missed in market_signals since 2026-11-23 11:59 UTC: SLI 91 % "
        "against an objective of 95 %."
    )
    assert "40 % of the 30-day error budget left" in inc.impact
    assert inc.links()["slo"] == "/slos/signals-latency"
    assert inc.links()["flow"] == "/flows/market_signals"


def test_a_missed_slo_names_the_bottleneck_of_its_flow() -> None:
    world = World()
    out = world.tick(at(0), [overflowing(at(0))], [slo(False, budget_remaining=-5.0)])
    [inc] = [i for i in out.opened if i.kind == "missed_slo"]  # failing for 10 min already
    assert inc.severity == "critical"  # the budget is spent
    assert inc.bottleneck == "enrich"
    assert inc.cause.startswith("enrich is the bottleneck")
    assert inc.action.startswith("Relieve enrich")
    assert "1,530 events waiting in market_signals" in inc.impact


def test_a_missed_slo_closes_after_it_passes_for_the_calm_period() -> None:
    world = World()
    world.tick(at(0), [], [slo(False)])
    world.tick(at(10), [], [slo(True)])
    assert world.only().timeline[-1].text == (
        "SLI 99 %, meeting an objective of 95 %; closes after 5 min of calm"
    )
    world.tick(at(310), [], [slo(True)])
    assert world.only().state == CLOSED


def test_an_incident_whose_subject_is_gone_closes_at_once() -> None:
    world = World()
    world.tick(at(0), [overflowing(at(0))], [slo(False)])
    world.tick(at(120), [overflowing(at(120))], [slo(False)])
    assert {i.kind for i in world.incidents.values()} == {"queue_overflow", "missed_slo"}
    out = world.tick(at(130), [], [])
    assert len(out.closed) == 2
    texts = sorted(i.timeline[-1].text for i in world.incidents.values())
    assert texts == [
        "The SLO signals-latency is no longer defined",
        "The flow of market_signals (or its stage enrich) is no longer declared",
    ]


def test_what_cannot_be_told_leaves_an_open_incident_as_it_is() -> None:
    world = World()
    world.tick(at(0), [overflowing(at(0))])
    world.tick(at(120), [overflowing(at(120))])
    before = world.only()
    # enrich sampled no queue depth in the window: no telling whether it overflows.
    out = world.tick(at(150), [flow(at(150), enrich={"queue_depth": None})])
    assert out.changed == () or all(i.id != before.id for i in out.changed)
    assert world.only() == before


def test_the_hold_and_calm_times_are_options() -> None:
    quick = DetectOptions(hold_s=10, calm_s=20)
    world = World()
    world.tick(at(0), [overflowing(at(0))], options=quick)
    assert world.tick(at(10), [overflowing(at(10))], options=quick).opened
    world.tick(at(11), [flow(at(11))], options=quick)
    assert world.tick(at(31), [flow(at(31))], options=quick).closed


def test_incident_ids_are_stable_and_distinct() -> None:
    one, two = World(), World()
    for world in (one, two):
        world.tick(at(0), [overflowing(at(0))])
        world.tick(at(120), [overflowing(at(120))])
    assert one.only().id == two.only().id
    other = replace(one.only(), opened_at=at(121))
    assert other.id == one.only().id  # replace keeps the id; a new opening gets a new one
    three = World()
    three.tick(at(1), [overflowing(at(1))])
    three.tick(at(121), [overflowing(at(121))])
    assert three.only().id != one.only().id


def test_a_long_flapping_recovery_keeps_a_bounded_timeline() -> None:
    world = World()
    world.tick(at(0), [overflowing(at(0))])
    world.tick(at(120), [overflowing(at(120))])
    for i in range(300):
        s = 130 + i * 10
        world.tick(at(s), [overflowing(at(s), 1500.0 if i % 2 else 500.0)])
    inc = world.only()
    assert inc.state == OPEN
    assert len(inc.timeline) == 200
    assert [e.what for e in inc.timeline[:2]] == ["began", "opened"]
    assert inc.timeline[-1].at == at(130 + 299 * 10)
