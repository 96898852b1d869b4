"""The demo's streaming pipeline: market signals flowing through ingest → validate → enrich →
store, with enrich (a model behind an API) the bottleneck.

Pure and deterministic: every draw comes from a ``random.Random`` seeded with the demo seed,
time is passed in, nothing is read or written. :meth:`StreamModel.step` advances the model by
``dt`` seconds and returns what a pipeline would report for that interval (a :class:`Tick`).

Two clocks:

- the **physics** (arrivals, capacities in events/s, queues, latencies) runs in real seconds,
  so rates and queue depths match the capacities the flow declares;
- the **scenario** (time of day, spikes, degradations) runs ``speed`` times faster: at 10×
  a day of traffic passes in 2.4 hours, a 20-minute degradation lasts 2 real minutes.

Queues are a fluid model per stage and signal: each tick a stage takes at most its capacity
× dt events from its queue plus what arrived, first in first out across signals; the rest
waits. An event's latency at a stage is its wait (≈ backlog / capacity) plus a service time
drawn around the stage's typical one, so latency rises with the backlog.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

PIPELINE: Final = "market_signals"
PROJECT: Final = "default"
ENV: Final = "prod"
SIGNALS: Final = ("sales_activity", "field_reports", "market_signals")
DAY_S: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class StageConfig:
    name: str
    capacity_per_s: float  # nominal throughput (events/s)
    service_ms: float  # typical time to handle one event once it is taken
    queue_capacity: int  # the backlog the stage is sized for (above: overflow)
    fail_p: float  # share of handled events the stage drops (rejects, errors)
    max_queue_factor: float = 10.0  # beyond queue_capacity × this, arrivals are shed


@dataclass(frozen=True, slots=True)
class StreamConfig:
    pipeline: str = PIPELINE
    project: str = PROJECT
    env: str = ENV
    title: str = "Market signals (streaming)"
    description: str = (
        "Sales activity, field reports and market signals, enriched by a model "
        "and stored for the commercial teams; enrich is the bottleneck."
    )
    stages: tuple[StageConfig, ...] = (
        StageConfig("ingest", 600.0, 4.0, 10_000, 0.0005),
        StageConfig("validate", 400.0, 12.0, 5_000, 0.008),
        StageConfig("enrich", 150.0, 200.0, 2_000, 0.002),
        StageConfig("store", 300.0, 25.0, 5_000, 0.0005),
    )
    # Arrivals per signal (events/s) at the signal's busiest hour.
    peak_rates: tuple[tuple[str, float], ...] = (
        ("sales_activity", 50.0),
        ("field_reports", 18.0),
        ("market_signals", 28.0),
    )
    bottleneck: str = "enrich"  # where degradations happen
    spike_every_s: float = 60 * 60.0  # scenario seconds between spikes, on average
    degrade_every_s: float = 3 * 3600.0  # … between degradations
    review_rate: float = 0.01
    latency_sample_rate: float = 0.05  # latency observations per finished event …
    max_samples_per_s: float = 20.0  # … at most this many per second per series

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.peak_rates)

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


DEFAULT_CONFIG: Final = StreamConfig()

# Relative traffic by scenario hour (0–23), linear in between: quiet nights, busy days.
_PROFILES: Final[Mapping[str, tuple[float, ...]]] = {
    # Business hours, a lunch dip, a quiet evening.
    "sales_activity": (
        0.06, 0.05, 0.04, 0.04, 0.05, 0.08, 0.18, 0.42, 0.75, 0.95, 1.0, 0.98,
        0.8, 0.82, 0.95, 0.97, 0.9, 0.7, 0.45, 0.3, 0.2, 0.14, 0.1, 0.08,
    ),
    # Reps file their reports at the end of their day.
    "field_reports": (
        0.03, 0.02, 0.02, 0.02, 0.02, 0.04, 0.1, 0.25, 0.4, 0.45, 0.5, 0.5,
        0.55, 0.5, 0.55, 0.7, 0.9, 1.0, 0.95, 0.6, 0.3, 0.15, 0.08, 0.05,
    ),
    # Feeds and news run around the clock, busier while markets are open.
    "market_signals": (
        0.35, 0.32, 0.3, 0.3, 0.32, 0.38, 0.5, 0.7, 0.9, 1.0, 1.0, 0.95,
        0.9, 0.92, 0.98, 1.0, 0.95, 0.85, 0.7, 0.6, 0.5, 0.45, 0.4, 0.38,
    ),
}  # fmt: skip


def traffic_level(signal: str, scenario_s: float) -> float:
    """The signal's relative traffic (0–1) at a scenario time (seconds; 0 = midnight)."""
    profile = _PROFILES.get(signal, _PROFILES["market_signals"])
    hour = (scenario_s % DAY_S) / 3600.0
    low = int(hour) % 24
    high = (low + 1) % 24
    frac = hour - int(hour)
    return profile[low] * (1 - frac) + profile[high] * frac


# -- what happens ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Spike:
    """Sudden extra traffic on some signals (news breaks, a campaign starts)."""

    start: float  # scenario seconds since the model's start
    end: float
    signals: tuple[str, ...]
    factor: float  # multiplier on those signals' arrivals
    cause: str

    def factor_at(self, signal: str, scenario: float) -> float:
        if signal not in self.signals or not self.start <= scenario < self.end:
            return 1.0
        # A quick ramp up (a tenth of the spike), then the full factor.
        ramp = max(1.0, (self.end - self.start) / 10)
        return 1.0 + (self.factor - 1.0) * min(1.0, (scenario - self.start) / ramp)


DegradationKind = Literal["slow_model", "rate_limited", "outage"]


@dataclass(frozen=True, slots=True)
class Degradation:
    """The bottleneck stage slows down for a while, then recovers on its own."""

    start: float  # scenario seconds since the model's start
    end: float  # back to normal (the last 20 % is the recovery ramp)
    stage: str
    kind: DegradationKind
    capacity_factor: float  # capacity multiplier at the worst
    service_factor: float  # service-time multiplier at the worst
    fail_p: float  # extra share of events that fail (timeouts, API errors)
    cause: str

    def severity(self, scenario: float) -> float:
        """0 = normal … 1 = the worst of it (ramps down over the last fifth)."""
        if not self.start <= scenario < self.end:
            return 0.0
        recovery = 0.8 * (self.end - self.start)
        into = scenario - self.start
        if into <= recovery:
            return 1.0
        return max(0.0, 1.0 - (into - recovery) / (self.end - self.start - recovery))


_SPIKE_CAUSES: Final = {
    "market_signals": "breaking news: a competitor's price cut hits the wires",
    "sales_activity": "a promotion launches: reps log a burst of orders",
    "field_reports": "store-visit deadline: reps upload their reports at once",
    "all": "quarter-end push: every source sends more",
}
_DEGRADATION_CAUSES: Final[Mapping[DegradationKind, str]] = {
    "slow_model": "the enrichment model answers slowly (GPU pool saturated)",
    "rate_limited": "the entity-resolution API rate-limits us (HTTP 429)",
    "outage": "the enrichment API is down (connection timeouts)",
}


def plan_events(
    config: StreamConfig, seed: int, horizon_s: float, story_at: float | None = None
) -> tuple[tuple[Spike, ...], tuple[Degradation, ...]]:
    """Spikes and degradations over ``horizon_s`` scenario seconds, drawn from the seed alone
    (so they do not depend on how the model is stepped). ``story_at`` (scenario seconds)
    plants a spike there and a degradation of the bottleneck a little later: the demo opens
    with something to watch."""
    rng = random.Random(f"stream-events/{seed}")
    signals = config.signals
    spikes: list[Spike] = []
    at = rng.expovariate(1 / config.spike_every_s)
    while at < horizon_s:
        length = rng.uniform(6 * 60, 25 * 60)
        if rng.random() < 0.25:
            hit, factor, cause = signals, rng.uniform(1.5, 2.0), _SPIKE_CAUSES["all"]
        else:
            one = rng.choice(signals)
            hit, factor, cause = (one,), rng.uniform(2.0, 5.0), _SPIKE_CAUSES.get(one, "")
        spikes.append(Spike(at, at + length, hit, factor, cause))
        at += length + rng.expovariate(1 / config.spike_every_s)
    degradations: list[Degradation] = []
    at = rng.expovariate(1 / config.degrade_every_s)
    while at < horizon_s:
        degradation = _degradation(config, rng, at)
        degradations.append(degradation)
        at = degradation.end + rng.expovariate(1 / config.degrade_every_s)
    if story_at is not None:
        # Five minutes in, news sends market signals up sixfold; forty minutes in, the
        # enrichment model slows down for twenty-five minutes. Drawn events nearby make way.
        opening = Spike(
            story_at + 5 * 60,
            story_at + 25 * 60,
            ("market_signals",),
            6.0,
            _SPIKE_CAUSES["market_signals"],
        )
        slow = _slow_model(config.bottleneck, story_at + 40 * 60, 25 * 60, 3.3, 0.01)
        calm = (story_at - 3600, story_at + 2 * 3600)
        spikes = [s for s in spikes if s.end <= calm[0] or s.start >= calm[1]]
        degradations = [d for d in degradations if d.end <= calm[0] or d.start >= calm[1]]
        spikes = sorted([*spikes, opening], key=lambda s: s.start)
        degradations = sorted([*degradations, slow], key=lambda d: d.start)
    return tuple(spikes), tuple(degradations)


def _degradation(config: StreamConfig, rng: random.Random, at: float) -> Degradation:
    roll = rng.random()
    stage = config.bottleneck
    if roll < 0.15:
        return Degradation(
            start=at,
            end=at + rng.uniform(4 * 60, 10 * 60),
            stage=stage,
            kind="outage",
            capacity_factor=rng.uniform(0.02, 0.06),
            service_factor=1.0,
            fail_p=rng.uniform(0.2, 0.4),
            cause=_DEGRADATION_CAUSES["outage"],
        )
    length = rng.uniform(10 * 60, 40 * 60)
    if roll < 0.6:
        return _slow_model(stage, at, length, rng.uniform(2.5, 4.0), rng.uniform(0.002, 0.01))
    return Degradation(
        start=at,
        end=at + length,
        stage=stage,
        kind="rate_limited",
        capacity_factor=rng.uniform(0.3, 0.5),
        service_factor=rng.uniform(1.2, 1.6),
        fail_p=rng.uniform(0.02, 0.05),
        cause=_DEGRADATION_CAUSES["rate_limited"],
    )


def _slow_model(stage: str, at: float, length: float, slow: float, fail_p: float) -> Degradation:
    # Workers stay busy longer with each event: capacity falls as service time rises.
    return Degradation(
        start=at,
        end=at + length,
        stage=stage,
        kind="slow_model",
        capacity_factor=1 / slow,
        service_factor=slow,
        fail_p=fail_p,
        cause=_DEGRADATION_CAUSES["slow_model"],
    )


# -- what a tick reports ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageTick:
    name: str
    arrivals: int  # arrived at the stage in the tick (= processed + failed + queue change)
    processed: int  # handled and passed on
    failed: int  # dropped: rejected, errored, or shed because the queue was full
    queue_depth: int  # waiting at the end of the tick
    capacity_per_s: float  # effective capacity during the tick
    latency_ms: tuple[float, ...]  # sampled wait + service of events it handled


@dataclass(frozen=True, slots=True)
class Tick:
    start: datetime
    end: datetime
    scenario_s: float  # scenario seconds since midnight of its first day, at the tick's end
    stages: tuple[StageTick, ...]
    arrivals: Mapping[str, int]  # new events per signal
    events: Mapping[str, int]  # finished end to end per signal
    failed: Mapping[str, int]  # dropped somewhere per signal
    e2e_latency_ms: Mapping[str, tuple[float, ...]]  # sampled per signal
    finished: Mapping[str, range]  # serial numbers of the events finished, per signal
    spikes: tuple[Spike, ...]  # in effect during the tick
    degradations: tuple[Degradation, ...]
    id_prefix: str  # the model's part of its event ids

    @property
    def backlog(self) -> int:
        return sum(s.queue_depth for s in self.stages)

    def stage(self, name: str) -> StageTick:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def event_ids(self, signal: str) -> Iterator[str]:
        """The ids of the events of ``signal`` finished in the tick."""
        for serial in self.finished.get(signal, range(0)):
            yield event_id(self.id_prefix, signal, serial)


def event_id(prefix: str, signal: str, serial: int) -> str:
    """Deterministic: the model's start, the signal and the event's number in it."""
    return f"{prefix}-{signal}-{serial:08d}"


def review_eligible(event: str, rate: float) -> bool:
    """Whether an event falls in the review sample: the SHA-256 of its id, read as a fraction,
    below ``rate``. The rule of ``flowdeck.review.sampling`` (a test keeps them equal), so the
    pipeline and the server agree, and an event is always in or always out."""
    digest = hashlib.sha256(event.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


# -- the model -------------------------------------------------------------------------------
@dataclass
class _StageState:
    queue: dict[str, int]
    budget: float = 0.0  # fractional capacity carried to the next tick


@dataclass
class StreamModel:
    """The pipeline's state over time. ``start`` is the real time of the model's zero;
    ``scenario_start`` the scenario time of day (seconds after midnight) at that moment."""

    seed: int
    start: datetime
    speed: float = 10.0
    config: StreamConfig = DEFAULT_CONFIG
    scenario_start: float = 8.5 * 3600
    story_at: float | None = None  # model seconds at which to plant the opening story
    horizon_s: float = 366 * DAY_S  # scenario seconds of planned events
    # Spikes and degradations to use instead of drawing them (each sorted, none overlapping).
    events: tuple[tuple[Spike, ...], tuple[Degradation, ...]] | None = None
    elapsed: float = field(default=0.0, init=False)  # model (real) seconds since start
    spikes: tuple[Spike, ...] = field(default=(), init=False)
    degradations: tuple[Degradation, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")
        if self.start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        if self.events is not None:
            self.spikes, self.degradations = self.events
        else:
            story = None if self.story_at is None else self.story_at * self.speed
            self.spikes, self.degradations = plan_events(
                self.config, self.seed, self.horizon_s, story
            )
        self._spike_starts = [s.start for s in self.spikes]
        self._degradation_starts = [d.start for d in self.degradations]
        self._rng = random.Random(f"stream/{self.seed}")
        self._stages = [
            _StageState({s: 0 for s in self.config.signals}) for _ in self.config.stages
        ]
        self._noise = {s: 0.0 for s in self.config.signals}  # slow wander of each signal
        self._serials = {s: 0 for s in self.config.signals}
        self.id_prefix = f"{self.start:%Y%m%d%H%M%S}"

    # -- clocks ----------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def scenario(self, elapsed: float | None = None) -> float:
        """Scenario seconds since the model's start at model time ``elapsed``."""
        return (self.elapsed if elapsed is None else elapsed) * self.speed

    def time_of_day(self, elapsed: float | None = None) -> float:
        return (self.scenario_start + self.scenario(elapsed)) % DAY_S

    def active(self, elapsed: float | None = None) -> tuple[list[Spike], list[Degradation]]:
        """The spikes and degradations in effect at model time ``elapsed``."""
        at = self.scenario(elapsed)
        return _current(self.spikes, self._spike_starts, at), _current(
            self.degradations, self._degradation_starts, at
        )

    def arrival_rate(self, signal: str, elapsed: float | None = None) -> float:
        """Expected arrivals per second of a signal (noise aside)."""
        peak = dict(self.config.peak_rates)[signal]
        spikes, _ = self.active(elapsed)
        at = self.scenario(elapsed)
        factor = math.prod(s.factor_at(signal, at) for s in spikes)
        return peak * traffic_level(signal, self.time_of_day(elapsed)) * factor

    def capacity(self, stage: str, elapsed: float | None = None) -> tuple[float, float, float]:
        """(capacity events/s, service-time factor, extra failure share) of a stage."""
        nominal = self.config.stage(stage).capacity_per_s
        _, degradations = self.active(elapsed)
        at = self.scenario(elapsed)
        cap, slow, fail = nominal, 1.0, 0.0
        for d in degradations:
            if d.stage != stage:
                continue
            sev = d.severity(at)
            cap *= 1 - sev * (1 - d.capacity_factor)
            slow *= 1 + sev * (d.service_factor - 1)
            fail += sev * d.fail_p
        return cap, slow, fail

    # -- one step --------------------------------------------------------------------------
    def step(self, dt: float) -> Tick:
        """Advance ``dt`` seconds (0 < dt ≤ 60) and report the interval."""
        if not 0 < dt <= 60:
            raise ValueError(f"dt must be in (0, 60] seconds, got {dt}")
        rng = self._rng
        cfg = self.config
        mid = self.elapsed + dt / 2
        spikes, degradations = self.active(mid)

        arrivals: dict[str, int] = {}
        for signal in cfg.signals:
            # A mean-reverting wander (about ±8 %, over a couple of minutes) keeps the curve
            # from looking machine-made, whatever the tick length.
            keep = math.exp(-dt / _WANDER_S)
            self._noise[signal] = keep * self._noise[signal] + rng.gauss(
                0, _WANDER * math.sqrt(1 - keep * keep)
            )
            rate = self.arrival_rate(signal, mid) * math.exp(self._noise[signal])
            arrivals[signal] = _poisson(rng, rate * dt)

        inflow = dict(arrivals)
        failed_by_signal = {s: 0 for s in cfg.signals}
        stage_ticks: list[StageTick] = []
        waits: list[tuple[float, float, float, float]] = []  # q0, q1, capacity, slow per stage
        for stage_cfg, state in zip(cfg.stages, self._stages, strict=True):
            cap, slow, extra_fail = self.capacity(stage_cfg.name, mid)
            cap *= math.exp(rng.gauss(0, 0.03))
            q0 = sum(state.queue.values())
            available = {s: state.queue[s] + inflow[s] for s in cfg.signals}
            total = sum(available.values())
            state.budget += cap * dt
            take = min(total, int(state.budget))
            state.budget = min(state.budget - take, 1.0)  # idle capacity is not saved up
            taken = _split(take, available)
            fail_p = min(1.0, stage_cfg.fail_p + extra_fail)
            out: dict[str, int] = {}
            dropped = 0
            limit = int(stage_cfg.queue_capacity * stage_cfg.max_queue_factor)
            left = total - take
            shed_total = max(0, left - limit)  # a full buffer refuses the newest events
            shed = _split(shed_total, {s: available[s] - taken[s] for s in cfg.signals})
            for signal in cfg.signals:
                bad = _binomial(rng, taken[signal], fail_p)
                out[signal] = taken[signal] - bad
                state.queue[signal] = available[signal] - taken[signal] - shed[signal]
                failed_by_signal[signal] += bad + shed[signal]
                dropped += bad + shed[signal]
            q1 = sum(state.queue.values())
            samples = self._sample_count(take, dt)
            latency = tuple(
                round(self._stage_latency(rng, stage_cfg, q0, q1, cap, slow), 1)
                for _ in range(samples)
            )
            waits.append((q0, q1, cap, slow))
            stage_ticks.append(
                StageTick(
                    name=stage_cfg.name,
                    arrivals=sum(inflow.values()),
                    processed=sum(out.values()),
                    failed=dropped,
                    queue_depth=q1,
                    capacity_per_s=round(cap, 2),
                    latency_ms=latency,
                )
            )
            inflow = out

        finished: dict[str, range] = {}
        e2e: dict[str, tuple[float, ...]] = {}
        for signal in cfg.signals:
            first = self._serials[signal]
            self._serials[signal] = first + inflow[signal]
            finished[signal] = range(first, first + inflow[signal])
            e2e[signal] = tuple(
                round(self._e2e_latency(rng, waits), 1)
                for _ in range(self._sample_count(inflow[signal], dt))
            )
        start = self.now
        self.elapsed += dt
        return Tick(
            start=start,
            end=self.now,
            scenario_s=self.scenario_start + self.scenario(),
            stages=tuple(stage_ticks),
            arrivals=arrivals,
            events=dict(inflow),
            failed=failed_by_signal,
            e2e_latency_ms=e2e,
            finished=finished,
            spikes=tuple(spikes),
            degradations=tuple(degradations),
            id_prefix=self.id_prefix,
        )

    def run(self, seconds: float, dt: float) -> Iterator[Tick]:
        """Ticks of ``dt`` (the last one shorter) until ``seconds`` more have passed."""
        end = self.elapsed + seconds
        while self.elapsed < end - 1e-9:
            yield self.step(min(dt, end - self.elapsed))

    def _sample_count(self, events: int, dt: float) -> int:
        """How many latency observations to report for ``events`` finished events: about
        one in twenty, bounded per tick so a busy pipeline does not flood the metric store."""
        if events <= 0:
            return 0
        expected = events * self.config.latency_sample_rate
        whole = int(expected)
        count = whole + (1 if self._rng.random() < expected - whole else 0)
        return min(count, max(1, round(self.config.max_samples_per_s * dt)))

    @staticmethod
    def _service_ms(rng: random.Random, stage: StageConfig, slow: float) -> float:
        sigma = 0.5
        return rng.lognormvariate(math.log(stage.service_ms * slow) - sigma**2 / 2, sigma)

    def _stage_latency(
        self, rng: random.Random, stage: StageConfig, q0: float, q1: float, cap: float, slow: float
    ) -> float:
        queued = q0 + (q1 - q0) * rng.random()
        return 1000.0 * queued / max(cap, 0.1) + self._service_ms(rng, stage, slow)

    def _e2e_latency(
        self, rng: random.Random, waits: Sequence[tuple[float, float, float, float]]
    ) -> float:
        total = 0.0
        for stage, (q0, q1, cap, slow) in zip(self.config.stages, waits, strict=True):
            total += self._stage_latency(rng, stage, q0, q1, cap, slow)
            total += rng.uniform(1.0, 6.0)  # hand-over between stages (broker, network)
        return total

    # -- review ------------------------------------------------------------------------------
    def review_record(
        self, tick: Tick, signal: str, event: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A finished event's record and its context, for a reviewer. Deterministic: drawn
        from the seed and the event id."""
        rng = random.Random(f"record/{self.seed}/{event}")
        record = _RECORDS.get(signal, _market_record)(rng)
        degraded = [d.cause for d in tick.degradations]
        confidence = record["enrichment"]["confidence"]
        if degraded:
            # A struggling model answers worse: the samples a reviewer should see.
            confidence = round(max(0.2, confidence - rng.uniform(0.1, 0.35)), 2)
            record["enrichment"]["confidence"] = confidence
        latencies = tick.e2e_latency_ms.get(signal) or (0.0,)
        context = {
            "pipeline": self.config.pipeline,
            "signal": signal,
            "finished_at": tick.end.isoformat(),
            "e2e_latency_ms": latencies[rng.randrange(len(latencies))],
            "enrich_model": "enrich-v4",
            "enrich_condition": "; ".join(degraded) if degraded else "normal",
            "backlog_at_finish": tick.backlog,
            "why_sampled": f"random {self.config.review_rate:.1%} sample of finished events",
        }
        return record, context


# -- records a reviewer sees -----------------------------------------------------------------
_ACCOUNTS: Final = ("Freshmart", "ValueCorner", "Northway", "CityGrocer", "HomeBasket",
                    "MegaSave", "Corner Deli Group", "Alpine Foods")  # fmt: skip
_REPS: Final = ("A. Jansen", "M. Rossi", "K. Novak", "S. Dubois", "L. Berg", "P. Costa")
_PRODUCTS: Final = ("Oat Crunch 500g", "Cold Brew 6-pack", "Greek Yoghurt 1kg",
                    "Sparkling Water 12×", "Protein Bar Box", "Olive Oil 750ml")  # fmt: skip
_COMPETITORS: Final = ("BrandCo", "Nordic Foods", "Sunvale", "Urban Pantry")
_HEADLINES: Final = (
    "{c} cuts prices on {p} by {n} % across {a}",
    "{c} launches a rival to {p} in {a} stores",
    "Supply shortage of {p} reported by {a}",
    "{a} delists {c}'s range after a pricing dispute",
)
_NOTES: Final = (
    "Shelf half empty, backroom had stock; staff short this week.",
    "Competitor display at the entrance; our facings reduced to 3.",
    "Promo material missing; manager asked for a new planogram.",
    "All good, new listing visible at eye level.",
)


def _pick(rng: random.Random, items: Sequence[str]) -> str:
    return items[rng.randrange(len(items))]


def _sales_record(rng: random.Random) -> dict[str, Any]:
    return {
        "account": _pick(rng, _ACCOUNTS),
        "rep": _pick(rng, _REPS),
        "activity": _pick(rng, ("call", "meeting", "order", "quote")),
        "product": _pick(rng, _PRODUCTS),
        "amount_eur": round(rng.lognormvariate(7.5, 0.9), 2),
        "enrichment": {
            "intent": _pick(rng, ("new business", "renewal", "expansion", "churn risk")),
            "sentiment": round(rng.uniform(-0.6, 0.9), 2),
            "confidence": round(rng.uniform(0.55, 0.99), 2),
        },
    }


def _field_record(rng: random.Random) -> dict[str, Any]:
    return {
        "account": _pick(rng, _ACCOUNTS),
        "store": f"store-{rng.randint(100, 999)}",
        "rep": _pick(rng, _REPS),
        "shelf_share_pct": round(rng.uniform(8, 45), 1),
        "out_of_stock": rng.sample(_PRODUCTS, rng.randint(0, 2)),
        "note": _pick(rng, _NOTES),
        "enrichment": {
            "issues": rng.sample(
                ["availability", "pricing", "display", "planogram"], rng.randint(0, 2)
            ),
            "priority": _pick(rng, ("low", "medium", "high")),
            "confidence": round(rng.uniform(0.5, 0.98), 2),
        },
    }


def _market_record(rng: random.Random) -> dict[str, Any]:
    competitor, product, account = (
        _pick(rng, _COMPETITORS),
        _pick(rng, _PRODUCTS),
        _pick(rng, _ACCOUNTS),
    )
    headline = _pick(rng, _HEADLINES).format(
        c=competitor, p=product, a=account, n=rng.choice((5, 8, 10, 15, 20))
    )
    return {
        "source": _pick(rng, ("newswire", "competitor price feed", "social listening")),
        "headline": headline,
        "enrichment": {
            "entities": [competitor, product, account],
            "impact": _pick(rng, ("low", "medium", "high")),
            "sentiment": round(rng.uniform(-0.9, 0.6), 2),
            "confidence": round(rng.uniform(0.5, 0.99), 2),
        },
    }


_RECORDS: Final = {
    "sales_activity": _sales_record,
    "field_reports": _field_record,
    "market_signals": _market_record,
}


_WANDER: Final = 0.08
_WANDER_S: Final = 120.0


# -- small helpers ---------------------------------------------------------------------------
def _current(
    events: Sequence[Spike] | Sequence[Degradation], starts: Sequence[float], at: float
) -> list[Any]:
    """The events in effect at ``at``; ``events`` sorted by start and not overlapping one
    another (each is drawn after the previous ended), so only the last started can be."""
    i = bisect.bisect_right(starts, at)
    return [e for e in events[max(0, i - 1) : i] if e.start <= at < e.end]


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if n <= 50:
        return sum(1 for _ in range(n) if rng.random() < p)
    if p < 0.05:
        return min(n, _poisson(rng, n * p))
    return min(n, max(0, round(rng.gauss(n * p, math.sqrt(n * p * (1 - p))))))


def _split(total: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``total`` shared in proportion to ``weights`` (largest remainder; never more than a
    weight): a stage takes from each signal's queue in proportion to what waits."""
    whole = sum(weights.values())
    if total <= 0 or whole <= 0:
        return {k: 0 for k in weights}
    total = min(total, whole)
    exact = {k: total * w / whole for k, w in weights.items()}
    shares = {k: int(v) for k, v in exact.items()}
    rest = total - sum(shares.values())
    for k in sorted(weights, key=lambda k: exact[k] - shares[k], reverse=True)[:rest]:
        shares[k] += 1
    return shares
