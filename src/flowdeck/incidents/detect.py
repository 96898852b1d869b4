"""Incident detection, pure: nothing here reads the clock, the database or the network.

Each tick the service hands over what it read (the signals of every declared flow, the state
of every SLO), the incidents still open, the conditions seen but not yet held long enough
(``pending``) and the time. :func:`detect` answers with the incidents to open, to update and
to close, and the new ``pending``.

- :func:`observe` turns the signals into observations: for each subject (a stage, an SLO, a
  whole pipeline) whether a condition holds now, and what it looks like in words.
- :func:`step` moves incidents, like the alert engine moves alerts::

      nothing ──condition──► pending ──held for hold_s──► open ──condition gone──► recovering
         ▲                      │                          ▲                          │
         └──condition gone──────┘                          └──── condition again ─────┤
                                                                                      │
                                                        closed ◄──calm for calm_s─────┘

  A condition shorter than the hold time opens nothing, and an incident whose condition
  returns within the calm period goes on (``relapsed``) instead of closing and reopening:
  no flapping either way.

Conditions:

- ``queue_overflow``: a stage's queue (``flow.queue_depth``) above its declared
  ``queue_capacity``. Reading: depth / capacity.
- ``stalled_stage``: a stage with events arriving or waiting that finished none in the
  window, or a stage that sent no points for ``silent_s`` while others did. A pipeline none
  of whose stages sent anything for ``silent_s`` is one pipeline-wide ``stalled_stage``
  (subject ""). Reading: events waiting (seconds silent for the no-data case).
- ``missed_slo``: an SLO not passing. Reading: the bad fraction over the allowed one
  ((100 − SLI) / (100 − objective), 1 = on the objective).

What cannot be told (a stage with no points in the window, a flow that never reported) is
not observed at all: an open incident about it stays as it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from flowdeck.incidents import wording as w
from flowdeck.incidents.model import (
    CLOSED,
    MISSED_SLO,
    OPEN,
    QUEUE_OVERFLOW,
    STALLED_STAGE,
    Incident,
    Moment,
    TimelineEntry,
    severity_rank,
)

Key = tuple[str, str, str, str]  # project, pipeline, kind, subject
MAX_TIMELINE: Final = 200


# -- what the service reads ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageSignal:
    """One stage of a flow over the window: its declaration and its metric points."""

    name: str
    queue_capacity: int | None = None  # declared: events its queue may hold
    capacity_per_s: float | None = None  # declared: nominal throughput
    queue_depth: float | None = None  # the latest flow.queue_depth in the window
    # Counters summed over the window; None where the stage never reported that counter.
    arrivals: float | None = None  # flow.arrivals
    processed: float | None = None  # flow.processed
    failed: float | None = None  # flow.failed
    latency_p95_ms: float | None = None  # flow.stage_latency_ms over the window
    last_point_at: datetime | None = None  # its newest point of any flow.* metric, if recent


@dataclass(frozen=True, slots=True)
class FlowSignals:
    """A declared flow (part A's FlowSpec) with what its stages reported."""

    project: str
    pipeline: str
    stages: tuple[StageSignal, ...]
    window_s: float = 60.0
    e2e_p95_ms: float | None = None  # flow.e2e_latency_ms over the window
    events: float | None = None  # flow.events (finished end to end) in the window

    @property
    def backlog(self) -> float | None:
        """Events waiting at all stages (None when no stage sampled its queue)."""
        depths = [s.queue_depth for s in self.stages if s.queue_depth is not None]
        return sum(depths) if depths else None

    def stage(self, name: str) -> StageSignal | None:
        return next((s for s in self.stages if s.name == name), None)


@dataclass(frozen=True, slots=True)
class SloSignal:
    """An SLO's state now (part B's SloState). Percentages in percent (99.0)."""

    project: str
    pipeline: str
    name: str
    kind: str  # latency | throughput | success_rate | freshness
    objective: float
    passing: bool
    sli: float | None = None
    budget_remaining: float | None = None  # percent of the 30-day error budget left
    failing_since: datetime | None = None
    known: bool = True  # False: its SLI could not be read now


@dataclass(frozen=True, slots=True)
class DetectOptions:
    hold_s: float = 120.0  # a condition must hold this long before an incident opens
    calm_s: float = 300.0  # recovered this long before an incident closes
    silent_s: float = 300.0  # a stage without points this long counts as stalled
    worsen_factor: float = 1.5  # a reading this many times the last noted one is "worsened"
    critical_fill: float = 2.0  # a queue this many times its capacity is critical


# -- observations --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Observation:
    """One subject at one tick: does its condition hold, and how it reads."""

    key: Key
    active: bool
    stage: str | None
    slo: str | None
    severity: str
    value: float | None  # bigger is worse
    reading: str  # the current reading in words
    title: str
    impact: str
    cause: str
    action: str
    bottleneck: str | None
    numbers: Mapping[str, float | None] = field(default_factory=dict)
    since: datetime | None = None  # when the condition began, when the signals tell
    tracks_worsening: bool = True  # False: the reading grows by itself (seconds silent)


def find_bottleneck(flow: FlowSignals) -> StageSignal | None:
    """The stage under most pressure: the largest queue relative to its capacity; else the
    lowest share of arrivals finished; else the highest load against its declared
    throughput; else the longest queue. None when nothing is under pressure."""
    filled = [
        s
        for s in flow.stages
        if s.queue_depth is not None and s.queue_capacity and s.queue_depth > 0
    ]
    if filled:
        return max(filled, key=lambda s: (s.queue_depth or 0) / (s.queue_capacity or 1))
    behind = [
        s
        for s in flow.stages
        if s.arrivals and s.processed is not None and s.processed < 0.95 * s.arrivals
    ]
    if behind:
        return min(behind, key=lambda s: (s.processed or 0.0) / (s.arrivals or 1.0))
    loaded = [
        s
        for s in flow.stages
        if s.capacity_per_s and (s.arrivals or 0.0) / flow.window_s >= 0.9 * s.capacity_per_s
    ]
    if loaded:
        return max(
            loaded, key=lambda s: (s.arrivals or 0.0) / flow.window_s / (s.capacity_per_s or 1)
        )
    queued = [s for s in flow.stages if s.queue_depth]
    return max(queued, key=lambda s: s.queue_depth or 0) if queued else None


def _pressure(flow: FlowSignals, s: StageSignal) -> str:
    """Why ``s`` looks like the bottleneck, in words."""
    parts = []
    if s.queue_depth is not None and s.queue_capacity:
        parts.append(
            f"{w.count(s.queue_depth)} events wait in its queue "
            f"({100 * s.queue_depth / s.queue_capacity:.0f} % of its capacity of "
            f"{w.count(s.queue_capacity)})"
        )
    elif s.queue_depth:
        parts.append(f"{w.count(s.queue_depth)} events wait in its queue")
    if s.arrivals and s.processed is not None:
        load = (
            f"it finishes {w.rate(s.processed / flow.window_s)} while "
            f"{w.rate(s.arrivals / flow.window_s)} arrive"
        )
        if s.capacity_per_s:
            load += f" (declared capacity {w.rate(s.capacity_per_s)})"
        parts.append(load)
    if s.latency_p95_ms is not None:
        parts.append(f"its p95 time per event is {w.ms(s.latency_p95_ms)}")
    return f"{s.name} is the bottleneck: " + ", ".join(parts) if parts else s.name


def _flow_impact(
    flow: FlowSignals, stage: StageSignal | None
) -> tuple[str, dict[str, float | None]]:
    parts = []
    backlog = flow.backlog
    if backlog is not None:
        text = f"{w.count(backlog)} events waiting in {flow.pipeline}"
        if stage is not None and stage.queue_depth is not None and stage.queue_depth != backlog:
            text += f" ({w.count(stage.queue_depth)} at {stage.name})"
        parts.append(text)
    if flow.e2e_p95_ms is not None:
        parts.append(f"end-to-end latency p95 {w.ms(flow.e2e_p95_ms)}")
    if stage is not None and stage.latency_p95_ms is not None:
        parts.append(f"{stage.name} p95 {w.ms(stage.latency_p95_ms)}")
    if stage is not None and stage.failed:
        parts.append(
            f"{w.count(stage.failed)} events failed at {stage.name} in the last "
            f"{w.duration(flow.window_s)}"
        )
    numbers: dict[str, float | None] = {
        "backlog": backlog,
        "e2e_p95_ms": flow.e2e_p95_ms,
        "events_per_s": None if flow.events is None else flow.events / flow.window_s,
    }
    if stage is not None:
        numbers |= {
            "queue_depth": stage.queue_depth,
            "queue_capacity": None if stage.queue_capacity is None else stage.queue_capacity,
            "arrival_rate": _per_s(stage.arrivals, flow.window_s),
            "processed_rate": _per_s(stage.processed, flow.window_s),
            "failed": stage.failed,
            "stage_p95_ms": stage.latency_p95_ms,
        }
    return "; ".join(parts) if parts else "No figures reported", numbers


def _per_s(total: float | None, window_s: float) -> float | None:
    return None if total is None else total / window_s


def _silent(s: StageSignal, now: datetime, options: DetectOptions) -> bool:
    return s.last_point_at is not None and (now - s.last_point_at).total_seconds() >= (
        options.silent_s
    )


def _overflow(
    flow: FlowSignals, s: StageSignal, bneck: StageSignal | None, options: DetectOptions
) -> Observation | None:
    if s.queue_capacity is None or s.queue_depth is None:
        return None
    fill = s.queue_depth / s.queue_capacity if s.queue_capacity > 0 else float("inf")
    active = s.queue_depth > s.queue_capacity
    if active:
        reading = (
            f"{w.count(s.queue_depth)} events wait at {s.name}, {w.times(fill)} its queue "
            f"capacity of {w.count(s.queue_capacity)}"
        )
    else:
        reading = (
            f"{w.count(s.queue_depth)} events wait at {s.name}, within its queue capacity of "
            f"{w.count(s.queue_capacity)}"
        )
    if bneck is not None and bneck.name != s.name:
        cause = _pressure(flow, bneck) + f"; the queue at {s.name} backs up behind it"
        action = (
            f"Relieve {bneck.name} first (more workers or partitions; check the model or API "
            f"it calls for slowness or errors): the queue at {s.name} drains once "
            f"{bneck.name} keeps up."
        )
    else:
        cause = (
            _pressure(flow, s)
            if s.arrivals or s.latency_p95_ms is not None
            else f"More events reach {s.name} than it finishes"
        )
        action = (
            f"Add capacity to {s.name} (more workers or partitions) or slow the intake "
            f"upstream; if {s.name} calls a model or an external API, check it for slowness "
            "or errors first."
        )
    impact, numbers = _flow_impact(flow, s)
    return Observation(
        key=(flow.project, flow.pipeline, QUEUE_OVERFLOW, s.name),
        active=active,
        stage=s.name,
        slo=None,
        severity="critical" if fill >= options.critical_fill else "error",
        value=fill,
        reading=reading,
        title=f"Queue overflow at {s.name}",
        impact=impact,
        cause=cause,
        action=action,
        bottleneck=(bneck or s).name if active else (bneck.name if bneck else None),
        numbers=numbers,
    )


def _stalled(
    flow: FlowSignals, s: StageSignal, now: datetime, options: DetectOptions
) -> Observation | None:
    key = (flow.project, flow.pipeline, STALLED_STAGE, s.name)
    impact, numbers = _flow_impact(flow, s)
    title = f"Stalled stage: {s.name}"
    if _silent(s, now, options):
        assert s.last_point_at is not None
        silent_for = (now - s.last_point_at).total_seconds()
        unseen = (
            f"Nothing known of {s.name} since {w.clock(s.last_point_at)}: events reaching it "
            "may pile up unseen"
        )
        return Observation(
            key=key,
            stage=s.name,
            slo=None,
            severity="critical",
            active=True,
            value=silent_for,
            reading=f"No points from {s.name} for {w.duration(silent_for)}",
            title=title,
            impact=unseen if impact == "No figures reported" else f"{unseen}; {impact}",
            cause=(
                f"{s.name} sent no metric points since {w.clock(s.last_point_at)} while the "
                "other stages did: it stopped, or its reporting did"
            ),
            action=(
                f"Check that {s.name} is running and can reach flowdeck (the SDK's spool, "
                "the network); if it runs, its reporting is broken and the live view is blind."
            ),
            bottleneck=s.name,
            numbers=numbers,
            since=s.last_point_at,
            tracks_worsening=False,
        )
    if s.processed is None:
        return None  # the stage does not report what it finishes: no telling
    arrivals = s.arrivals or 0.0
    waiting = s.queue_depth if s.queue_depth is not None else arrivals
    if s.queue_depth is None and arrivals == 0 and s.processed == 0:
        return None  # nothing in the window: no telling
    window = w.duration(flow.window_s)
    active = s.processed == 0 and (arrivals > 0 or (s.queue_depth or 0) > 0)
    if active:
        reading = f"{s.name} finished no event in the last {window} with {w.count(waiting)} waiting"
    else:
        reading = f"{s.name} finishes {w.rate(s.processed / flow.window_s)} again"
    failed = (
        f"; {w.count(s.failed)} failed in the window, so look at its errors" if s.failed else ""
    )
    return Observation(
        key=key,
        stage=s.name,
        slo=None,
        severity="critical",
        active=active,
        value=waiting,
        reading=reading,
        title=title,
        impact=impact,
        cause=(
            f"{s.name} has {w.count(waiting)} events waiting and finished none in the last "
            f"{window}: its workers are stopped, stuck or failing{failed}"
        ),
        action=(
            f"Check {s.name}'s workers: are they running, or stuck on a lock, a dependency "
            "or a poison event? Restart them; the backlog drains once the stage processes "
            "again."
        ),
        bottleneck=s.name,
        numbers=numbers,
    )


def _silent_pipeline(flow: FlowSignals, now: datetime, options: DetectOptions) -> Observation:
    last = max(s.last_point_at for s in flow.stages if s.last_point_at is not None)
    silent_for = (now - last).total_seconds()
    active = all(_silent(s, now, options) or s.last_point_at is None for s in flow.stages)
    return Observation(
        key=(flow.project, flow.pipeline, STALLED_STAGE, ""),
        active=active,
        stage=None,
        slo=None,
        severity="critical",
        value=silent_for,
        reading=(
            f"No points from any stage of {flow.pipeline} for {w.duration(silent_for)}"
            if active
            else f"{flow.pipeline} reports again"
        ),
        title=f"{flow.pipeline} stopped reporting",
        impact=(
            f"Nothing known of {flow.pipeline} since {w.clock(last)}: events may be piling up "
            "unseen"
        ),
        cause=f"No stage of {flow.pipeline} sent metric points since {w.clock(last)}",
        action=(
            f"Check that {flow.pipeline}'s processes are running and can reach flowdeck. If "
            "it was stopped on purpose, delete its flow declaration, or the incident stays "
            "open until it reports again."
        ),
        bottleneck=None,
        numbers={"silent_s": silent_for},
        since=last,
        tracks_worsening=False,
    )


_SLO_ACTIONS = {
    "latency": "Find where events wait on the flow page and relieve that stage (more "
    "workers, or check the model or API it calls); latency recovers as its queue drains.",
    "throughput": "Fewer events finish per cycle than the objective needs: look for a "
    "stalled stage or a source that went quiet.",
    "success_rate": "Look at the failed runs of {pipeline} (its source page) and fix what "
    "makes them fail; rerun the batches affected.",
    "freshness": "{pipeline} has not succeeded recently enough: check that its runs are "
    "scheduled, running and not failing.",
}


def _slo(slo: SloSignal, flow: FlowSignals | None) -> Observation:
    bneck = find_bottleneck(flow) if flow is not None else None
    allowed = 100.0 - slo.objective
    value = None if slo.sli is None or allowed <= 0 else (100.0 - slo.sli) / allowed
    target = f"an objective of {w.pct(slo.objective)}"
    sli = f"SLI {w.pct(slo.sli)}" if slo.sli is not None else "No SLI yet"
    reading = f"{sli} against {target}" if not slo.passing else f"{sli}, meeting {target}"
    parts = []
    if slo.budget_remaining is not None:
        parts.append(
            f"{w.pct(slo.budget_remaining, 1)} of the 30-day error budget left"
            if slo.budget_remaining > 0
            else "The 30-day error budget is spent"
        )
    numbers: dict[str, float | None] = {
        "sli": slo.sli,
        "objective": slo.objective,
        "budget_remaining": slo.budget_remaining,
    }
    if flow is not None:
        flow_text, flow_numbers = _flow_impact(flow, bneck)
        parts.append(flow_text)
        numbers |= flow_numbers
    if bneck is not None and slo.kind in ("latency", "throughput"):
        cause = _pressure(flow, bneck) if flow is not None else bneck.name
        action = (
            f"Relieve {bneck.name} (more workers or partitions; check the model or API it "
            f"calls): the {slo.kind} SLO recovers as its queue drains."
        )
    else:
        cause = f"The {slo.kind.replace('_', ' ')} of {slo.pipeline} fell below the objective"
        if slo.kind in ("latency", "throughput"):
            cause += "; no stage shows pressure now, see the SLO's history"
        action = _SLO_ACTIONS.get(slo.kind, "See the SLO's page.").format(pipeline=slo.pipeline)
    exhausted = slo.budget_remaining is not None and slo.budget_remaining <= 0
    return Observation(
        key=(slo.project, slo.pipeline, MISSED_SLO, slo.name),
        active=not slo.passing,
        stage=bneck.name if bneck is not None else None,
        slo=slo.name,
        severity="critical" if exhausted else "error",
        value=value,
        reading=reading,
        title=f"SLO {slo.name} missed",
        impact="; ".join(parts) if parts else f"{sli} against {target}",
        cause=cause,
        action=action,
        bottleneck=bneck.name if bneck is not None else None,
        numbers=numbers,
        since=slo.failing_since,
    )


def observe(
    flows: Sequence[FlowSignals],
    slos: Sequence[SloSignal],
    now: datetime,
    options: DetectOptions,
) -> list[Observation]:
    out: list[Observation] = []
    for flow in flows:
        if not any(s.last_point_at is not None for s in flow.stages):
            continue  # never reported (or not for a long time): nothing to tell
        pipeline = _silent_pipeline(flow, now, options)
        out.append(pipeline)
        bneck = find_bottleneck(flow)
        for s in flow.stages:
            if _silent(s, now, options) and pipeline.active:
                continue  # the pipeline-wide incident speaks for it
            if not _silent(s, now, options) and (obs := _overflow(flow, s, bneck, options)):
                out.append(obs)
            if obs := _stalled(flow, s, now, options):
                out.append(obs)
    by_flow = {(f.project, f.pipeline): f for f in flows}
    out.extend(_slo(slo, by_flow.get((slo.project, slo.pipeline))) for slo in slos if slo.known)
    return out


# -- moving incidents ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pending:
    """A condition seen, not yet held for the hold time."""

    since: datetime
    reading: str
    value: float | None


@dataclass(frozen=True, slots=True)
class Outcome:
    opened: tuple[Incident, ...] = ()
    updated: tuple[Incident, ...] = ()  # still open, changed
    closed: tuple[Incident, ...] = ()
    pending: Mapping[Key, Pending] = field(default_factory=dict)
    # Ids of the updated incidents with news for people (worsened, recovering, relapsed),
    # as opposed to fresh figures only.
    news: frozenset[str] = frozenset()

    @property
    def changed(self) -> tuple[Incident, ...]:
        return (*self.opened, *self.updated, *self.closed)


def incident_id(key: Key, opened_at: datetime) -> str:
    text = "\x1f".join([*key, opened_at.isoformat()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compose(title: str, pipeline: str, since: datetime, obs: Observation) -> str:
    """The message: what, where, since when, impact, likely cause, suggested action."""
    return (
        f"{title} in {pipeline} since {w.clock(since)}: {obs.reading}. "
        f"Impact: {obs.impact}. Likely cause: {obs.cause}. Suggested action: {obs.action}"
    )


def _entry(at: datetime, what: Moment, text: str, value: float | None) -> TimelineEntry:
    # Texts keep their case: many begin with a stage's or pipeline's name.
    return TimelineEntry(at, what, text, value)


def _add(timeline: Iterable[TimelineEntry], *entries: TimelineEntry) -> tuple[TimelineEntry, ...]:
    # Sorted by time; entries of the same time keep the order they were added in. A long
    # incident that keeps relapsing keeps how it began and its latest entries.
    every = sorted((*timeline, *entries), key=lambda e: e.at)
    if len(every) > MAX_TIMELINE:
        every = every[:2] + every[-(MAX_TIMELINE - 2) :]
    return tuple(every)


def _open(obs: Observation, p: Pending, now: datetime) -> Incident:
    held = w.duration((now - p.since).total_seconds())
    timeline = _add(
        (),
        _entry(p.since, "began", p.reading, p.value),
        _entry(now, "opened", f"Opened after {held}: {obs.reading}", obs.value),
    )
    return Incident(
        id=incident_id(obs.key, now),
        project=obs.key[0],
        pipeline=obs.key[1],
        kind=obs.key[2],
        subject=obs.key[3],
        stage=obs.stage,
        slo=obs.slo,
        severity=obs.severity,
        state=OPEN,
        started_at=p.since,
        opened_at=now,
        closed_at=None,
        recovering_since=None,
        updated_at=now,
        title=obs.title,
        reading=obs.reading,
        summary=compose(obs.title, obs.key[1], p.since, obs),
        impact=obs.impact,
        cause=obs.cause,
        action=obs.action,
        bottleneck=obs.bottleneck,
        value=obs.value,
        peak=obs.value,
        peak_at=now if obs.value is not None else None,
        numbers=dict(obs.numbers),
        timeline=timeline,
    )


def _last_level(inc: Incident) -> float | None:
    for e in reversed(inc.timeline):
        if e.what in ("opened", "worsened", "relapsed") and e.value is not None:
            return e.value
    return None


def _active(
    inc: Incident, obs: Observation, now: datetime, options: DetectOptions
) -> tuple[Incident, bool]:
    """An open incident whose condition holds: fresh figures, and news when it worsened or
    came back during the calm period."""
    entries = []
    severity = inc.severity
    if inc.recovering_since is not None:
        entries.append(_entry(now, "relapsed", obs.reading, obs.value))
    else:
        level = _last_level(inc)
        grew = (
            obs.tracks_worsening
            and obs.value is not None
            and level is not None
            and level > 0
            and obs.value >= level * options.worsen_factor
        )
        rose = severity_rank(obs.severity) > severity_rank(inc.severity)
        if grew or rose:
            text = obs.reading + (f"; now {obs.severity}" if rose else "")
            entries.append(_entry(now, "worsened", text, obs.value))
    if severity_rank(obs.severity) > severity_rank(severity):
        severity = obs.severity
    peak, peak_at, timeline = inc.peak, inc.peak_at, inc.timeline
    if obs.value is not None and obs.tracks_worsening and (peak is None or obs.value > peak):
        peak, peak_at = obs.value, now
        # One peak entry, moved as the peak grows.
        timeline = tuple(e for e in timeline if e.what != "peak")
        entries.append(_entry(now, "peak", obs.reading, obs.value))
    elif obs.value is not None and not obs.tracks_worsening:
        peak, peak_at = obs.value, now
    updated = replace(
        inc,
        severity=severity,
        recovering_since=None,
        updated_at=now,
        title=obs.title,
        reading=obs.reading,
        summary=compose(obs.title, inc.pipeline, inc.started_at, obs),
        impact=obs.impact,
        cause=obs.cause,
        action=obs.action,
        bottleneck=obs.bottleneck,
        stage=obs.stage if obs.stage is not None else inc.stage,
        value=obs.value,
        peak=peak,
        peak_at=peak_at,
        numbers=dict(obs.numbers),
        timeline=_add(timeline, *entries),
    )
    news = any(e.what != "peak" for e in entries)
    return updated, news


def _inactive(
    inc: Incident, obs: Observation | None, now: datetime, options: DetectOptions
) -> tuple[Incident, bool]:
    """An open incident whose condition is gone (``obs`` None: its subject is no longer
    declared, which closes it at once)."""
    if obs is None:
        what = (
            f"The SLO {inc.slo} is no longer defined"
            if inc.kind == MISSED_SLO
            else f"The flow of {inc.pipeline} (or its stage {inc.stage}) is no longer declared"
            if inc.stage
            else f"The flow of {inc.pipeline} is no longer declared"
        )
        return _close(inc, now, what), True
    if inc.recovering_since is None:
        calm = w.duration(options.calm_s)
        entry = _entry(now, "recovering", f"{obs.reading}; closes after {calm} of calm", obs.value)
        updated = replace(
            inc,
            recovering_since=now,
            updated_at=now,
            timeline=_add(inc.timeline, entry),
        )
        return updated, True
    if (now - inc.recovering_since).total_seconds() >= options.calm_s:
        lasted = w.duration((inc.recovering_since - inc.started_at).total_seconds())
        return _close(
            inc,
            now,
            f"Calm for {w.duration(options.calm_s)} after recovering; the condition lasted "
            f"{lasted}",
        ), True
    return inc, False


def _close(inc: Incident, now: datetime, text: str) -> Incident:
    return replace(
        inc,
        state=CLOSED,
        closed_at=now,
        recovering_since=inc.recovering_since or now,
        updated_at=now,
        timeline=_add(inc.timeline, _entry(now, "closed", text, None)),
    )


def watched(inc: Incident, flows: Sequence[FlowSignals], slos: Sequence[SloSignal]) -> bool:
    """Is the incident's subject still declared (its flow and stage, or its SLO)?"""
    if inc.kind == MISSED_SLO:
        return any(
            (s.project, s.pipeline, s.name) == (inc.project, inc.pipeline, inc.slo) for s in slos
        )
    for f in flows:
        if (f.project, f.pipeline) == (inc.project, inc.pipeline):
            return inc.subject == "" or f.stage(inc.subject) is not None
    return False


def step(
    observations: Sequence[Observation],
    open_incidents: Sequence[Incident],
    pending: Mapping[Key, Pending],
    now: datetime,
    options: DetectOptions,
    still_watched: Mapping[str, bool] | None = None,
) -> Outcome:
    """Move every incident one tick. ``still_watched`` (incident id → bool) says whether an
    open incident's subject is still declared; one not in it is."""
    by_key = {o.key: o for o in observations}
    opened: list[Incident] = []
    updated: list[Incident] = []
    closed: list[Incident] = []
    news: set[str] = set()
    held: set[Key] = set()
    for inc in open_incidents:
        held.add(inc.key)
        obs = by_key.get(inc.key)
        if still_watched is not None and not still_watched.get(inc.id, True):
            after, told = _inactive(inc, None, now, options)
        elif obs is None:
            continue  # cannot tell now: as it was
        elif obs.active:
            after, told = _active(inc, obs, now, options)
        else:
            after, told = _inactive(inc, obs, now, options)
        if after is inc:
            continue
        if after.state == CLOSED:
            closed.append(after)
        else:
            updated.append(after)
            if told:
                news.add(after.id)
    next_pending: dict[Key, Pending] = {}
    for obs in observations:
        if not obs.active or obs.key in held:
            continue
        before = pending.get(obs.key)
        since = obs.since or (before.since if before is not None else now)
        p = (
            Pending(since, before.reading, before.value)
            if before is not None
            else Pending(since, obs.reading, obs.value)
        )
        if now - since >= timedelta(seconds=options.hold_s):
            opened.append(_open(obs, p, now))
        else:
            next_pending[obs.key] = p
    return Outcome(tuple(opened), tuple(updated), tuple(closed), next_pending, frozenset(news))


def detect(
    flows: Sequence[FlowSignals],
    slos: Sequence[SloSignal],
    open_incidents: Sequence[Incident],
    pending: Mapping[Key, Pending],
    now: datetime,
    options: DetectOptions | None = None,
) -> Outcome:
    """One tick: observe the signals, then move the incidents."""
    options = options or DetectOptions()
    observations = observe(flows, slos, now, options)
    still = {inc.id: watched(inc, flows, slos) for inc in open_incidents}
    return step(observations, open_incidents, pending, now, options, still)
