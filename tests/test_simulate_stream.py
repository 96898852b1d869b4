"""The demo's streaming pipeline (simulate/stream.py): queues that build and drain, traffic
that varies, degradations that recover, latency that follows the backlog, determinism."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from datetime import UTC, datetime

import pytest

from flowdeck.review.sampling import is_sampled
from flowdeck.simulate.stream import (
    DEFAULT_CONFIG,
    SIGNALS,
    Degradation,
    Spike,
    StreamModel,
    Tick,
    plan_events,
    review_eligible,
    traffic_level,
)

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SEED = 7
BUSY = 11 * 3600.0  # scenario time of day: late morning, the busiest hour
NIGHT = 3 * 3600.0
ENRICH = DEFAULT_CONFIG.stage("enrich").capacity_per_s


def calm_model(*spikes: Spike, degradations: tuple[Degradation, ...] = (), **kw) -> StreamModel:
    """A model at real-time speed with only the events given (nothing drawn)."""
    kw.setdefault("scenario_start", BUSY)
    return StreamModel(SEED, T0, speed=1.0, events=(spikes, degradations), **kw)


def enrich_queue(ticks: list[Tick]) -> list[int]:
    return [t.stage("enrich").queue_depth for t in ticks]


def test_backlog_grows_while_arrivals_exceed_enrich_capacity_and_drains_after() -> None:
    # Every signal doubles for ten minutes at the busiest hour: ~175 events/s against 150.
    spike = Spike(600, 1200, SIGNALS, 2.0, "test")
    model = calm_model(spike)
    before = list(model.run(600, 5))
    during = list(model.run(600, 5))
    after = list(model.run(1800, 5))

    assert max(enrich_queue(before)) < 200  # busy but under capacity: no lasting queue
    rate = sum(sum(t.arrivals.values()) for t in during[20:]) / (5 * len(during[20:]))
    assert rate > 1.1 * ENRICH
    queue = enrich_queue(during)
    # Grows all along the spike, by about (arrivals − capacity) per second.
    assert all(b >= a for a, b in zip(queue[::12], queue[12::12], strict=False))
    assert queue[-1] > 0.5 * (rate - ENRICH) * 600
    # Enrich is the bottleneck: the stages before it keep up, the one after is fed at
    # enrich's pace.
    for t in during:
        assert t.stage("ingest").queue_depth < 100
        assert t.stage("validate").queue_depth < 100
        assert t.stage("store").queue_depth < 100
        assert t.stage("enrich").processed <= 1.1 * ENRICH * 5

    drained = enrich_queue(after)
    assert drained[0] > 0.9 * queue[-1]
    assert drained[-1] == 0  # drains on its own once the spike is over …
    first_empty = drained.index(0)
    assert max(drained[first_empty:]) < 200  # and stays drained
    # … at the spare capacity: it takes longer than the backlog at full capacity would.
    assert first_empty * 5 > queue[-1] / ENRICH


def test_a_full_buffer_sheds_arrivals_as_failures() -> None:
    model = calm_model(Spike(0, 1200, SIGNALS, 4.0, "test"))
    limit = DEFAULT_CONFIG.stage("enrich").queue_capacity * 10
    ticks = list(model.run(1200, 5))
    assert max(enrich_queue(ticks)) == limit
    full = [
        b.stage("enrich")
        for a, b in itertools.pairwise(ticks)
        if a.stage("enrich").queue_depth == b.stage("enrich").queue_depth == limit
    ]
    assert full
    for stage in full:  # what enrich cannot take or keep is dropped, and counted as failed
        assert stage.failed > 0.3 * stage.arrivals  # ~320 events/s against ~150
        assert stage.arrivals == stage.processed + stage.failed


def test_every_event_is_accounted_for_at_every_stage() -> None:
    model = calm_model(Spike(300, 900, ("market_signals",), 5.0, "test"))
    ticks = list(model.run(1800, 3))
    for i, stage in enumerate(DEFAULT_CONFIG.stages):
        arrivals = sum(t.stages[i].arrivals for t in ticks)
        processed = sum(t.stages[i].processed for t in ticks)
        failed = sum(t.stages[i].failed for t in ticks)
        assert arrivals == processed + failed + ticks[-1].stages[i].queue_depth, stage.name
        if i:  # a stage gets what the one before it passed on
            assert arrivals == sum(t.stages[i - 1].processed for t in ticks)
    assert sum(sum(t.arrivals.values()) for t in ticks) == sum(t.stages[0].arrivals for t in ticks)
    assert sum(sum(t.events.values()) for t in ticks) == sum(t.stages[-1].processed for t in ticks)
    failed = sum(sum(t.failed.values()) for t in ticks)
    assert failed == sum(s.failed for t in ticks for s in t.stages)
    # A small fraction fails (validation rejects, model errors), not none.
    assert 0 < failed < 0.03 * sum(t.stages[0].arrivals for t in ticks)


def test_same_seed_same_series_and_another_seed_another() -> None:
    def series(seed: int, dt: float) -> list[Tick]:
        return list(StreamModel(seed, T0, speed=10, story_at=600).run(3600, dt))

    a = series(SEED, 2)
    assert a == series(SEED, 2)
    assert a != series(SEED + 1, 2)
    assert enrich_queue(a) == enrich_queue(series(SEED, 2))
    # Spikes and degradations come from the seed alone, not from how the model is stepped.
    coarse = StreamModel(SEED, T0, speed=10, story_at=600)
    fine = StreamModel(SEED, T0, speed=10, story_at=600)
    list(coarse.run(600, 30))
    list(fine.run(600, 1))
    assert coarse.spikes == fine.spikes
    assert coarse.degradations == fine.degradations


def test_degradation_lowers_capacity_then_recovers_on_its_own() -> None:
    slow = Degradation(
        start=600,
        end=1800,
        stage="enrich",
        kind="slow_model",
        capacity_factor=0.3,
        service_factor=3.3,
        fail_p=0.01,
        cause="test",
    )
    model = calm_model(degradations=(slow,))
    assert model.capacity("enrich", 300) == (ENRICH, 1.0, 0.0)
    cap, service, fail = model.capacity("enrich", 900)
    assert cap == pytest.approx(0.3 * ENRICH)
    assert service == pytest.approx(3.3)
    assert fail == pytest.approx(0.01)
    ramp = model.capacity("enrich", 1680)[0]  # recovering over the last fifth
    assert 0.3 * ENRICH < ramp < ENRICH
    assert model.capacity("enrich", 1800) == (ENRICH, 1.0, 0.0)
    assert model.capacity("validate", 900)[0] == DEFAULT_CONFIG.stage("validate").capacity_per_s

    ticks = list(model.run(3600, 5))
    caps = [t.stage("enrich").capacity_per_s for t in ticks]
    assert statistics.median(caps[130:330]) < 0.4 * ENRICH
    assert statistics.median(caps[400:]) > 0.9 * ENRICH
    queue = enrich_queue(ticks)
    assert max(queue[120:360]) > 5_000  # a busy morning does not fit in 30 % of capacity
    assert queue[-1] == 0  # recovered and drained without anyone doing anything
    assert all(not t.degradations for t in ticks[360:])
    # The slow model fails more events while it struggles.
    failing = sum(t.stage("enrich").failed for t in ticks[130:330])
    handled = sum(t.stage("enrich").processed for t in ticks[130:330])
    assert failing / (failing + handled) > 0.005


def test_latency_rises_with_the_backlog() -> None:
    model = calm_model(Spike(300, 900, SIGNALS, 3.0, "test"))
    ticks = list(model.run(2400, 5))
    by_backlog: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for t in ticks:
        queue = t.stage("enrich").queue_depth
        band = 0 if queue < 50 else 1 if queue < 2_000 else 2
        by_backlog[band].extend(x for xs in t.e2e_latency_ms.values() for x in xs)
    calm, some, much = (statistics.median(by_backlog[b]) for b in (0, 1, 2))
    assert calm < 1_000  # service times alone: a few hundred ms
    assert calm < some < much
    assert much > 2_000 / ENRICH * 1000  # waiting behind thousands at 150/s takes seconds
    # Each stage's latency is its own wait plus service: enrich carries the queueing.
    worst = max(ticks, key=lambda t: t.stage("enrich").queue_depth)
    assert statistics.median(worst.stage("enrich").latency_ms) > 10_000
    assert statistics.median(worst.stage("store").latency_ms) < 200


def test_quiet_nights_busy_days_and_sudden_spikes() -> None:
    for signal in SIGNALS:
        assert traffic_level(signal, NIGHT) < 0.4 * traffic_level(signal, BUSY)
    night = list(calm_model(scenario_start=NIGHT).run(600, 10))
    day = list(calm_model().run(600, 10))
    assert sum(sum(t.arrivals.values()) for t in night) < 0.3 * sum(
        sum(t.arrivals.values()) for t in day
    )
    spiked = list(calm_model(Spike(0, 600, ("field_reports",), 4.0, "test")).run(600, 10))
    normal = Counter[str]()
    burst = Counter[str]()
    for t in day:
        normal.update(t.arrivals)
    for t in spiked:
        burst.update(t.arrivals)
    assert burst["field_reports"] > 3 * normal["field_reports"]
    assert burst["sales_activity"] == pytest.approx(normal["sales_activity"], rel=0.15)


def test_planned_events_are_spread_and_the_story_opens_the_live_part() -> None:
    spikes, degradations = plan_events(DEFAULT_CONFIG, SEED, 7 * 86_400)
    assert 7 * 24 / 2 < len(spikes) < 7 * 24 * 2  # about one an hour
    assert 7 * 24 / 6 < len(degradations) < 7 * 24 / 1.5  # about one every three hours
    for earlier, later in itertools.pairwise(spikes):
        assert earlier.end <= later.start
    for before, after in itertools.pairwise(degradations):
        assert before.end <= after.start
    assert {d.kind for d in degradations} == {"slow_model", "rate_limited", "outage"}
    assert all(d.stage == "enrich" for d in degradations)
    assert (spikes, degradations) == plan_events(DEFAULT_CONFIG, SEED, 7 * 86_400)

    story_spikes, story_slow = plan_events(DEFAULT_CONFIG, SEED, 7 * 86_400, story_at=86_400)
    opening = [s for s in story_spikes if 86_400 <= s.start < 86_400 + 3600]
    assert [s.signals for s in opening] == [("market_signals",)]
    slow = [d for d in story_slow if 86_400 <= d.start < 86_400 + 3600]
    assert [d.kind for d in slow] == ["slow_model"]
    assert opening[0].end <= slow[0].start  # one thing at a time


def test_speed_compresses_the_scenario_not_the_physics() -> None:
    fast = StreamModel(SEED, T0, speed=10, scenario_start=0.0)
    assert fast.time_of_day(360) == pytest.approx(3600)  # an hour of day in six minutes
    tick = fast.step(2)
    assert tick.end == datetime(2026, 11, 23, 9, 0, 2, tzinfo=UTC)
    assert tick.stage("enrich").capacity_per_s == pytest.approx(ENRICH, rel=0.15)
    with pytest.raises(ValueError, match="speed must be positive"):
        StreamModel(SEED, T0, speed=0)
    with pytest.raises(ValueError, match="dt must be in"):
        fast.step(0)


def test_finished_events_have_deterministic_ids_and_a_review_sample() -> None:
    model = calm_model()
    ticks = list(model.run(600, 5))
    ids = [e for t in ticks for s in SIGNALS for e in t.event_ids(s)]
    assert len(ids) == len(set(ids)) == sum(sum(t.events.values()) for t in ticks)
    assert ids[:3] == [e for s in SIGNALS for e in ticks[0].event_ids(s)][:3]
    again = [e for t in calm_model().run(600, 5) for s in SIGNALS for e in t.event_ids(s)]
    assert again == ids

    sampled = [e for e in ids if review_eligible(e, 0.01)]
    assert 0.005 * len(ids) < len(sampled) < 0.015 * len(ids)
    # The same rule as the server's sampling, so pipeline and server agree.
    assert all(review_eligible(e, r) == is_sampled(e, r) for e in ids[:3000] for r in (0.01, 0.02))

    event = sampled[0]
    tick = next(t for t in ticks for s in SIGNALS if event in set(t.event_ids(s)))
    signal = event.split("-")[1]
    record, context = model.review_record(tick, signal, event)
    assert (record, context) == model.review_record(tick, signal, event)
    assert 0 < record["enrichment"]["confidence"] <= 1
    assert context["signal"] == signal
    assert context["finished_at"] == tick.end.isoformat()


def test_latency_observations_are_bounded_per_tick() -> None:
    model = calm_model(Spike(0, 600, SIGNALS, 3.0, "test"))
    for tick in model.run(600, 10):
        cap = round(DEFAULT_CONFIG.max_samples_per_s * 10)
        for stage in tick.stages:
            assert len(stage.latency_ms) <= cap
            assert len(stage.latency_ms) <= stage.processed + stage.failed
        for signal in SIGNALS:
            assert len(tick.e2e_latency_ms[signal]) <= min(cap, tick.events[signal])
        assert sum(len(xs) for xs in tick.e2e_latency_ms.values()) > 0
