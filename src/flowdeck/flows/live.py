"""The live view of a flow: what each stage is doing now, read from its metric points.

Metric names (every point carries the tag ``pipeline``; stage metrics carry ``stage``, event
metrics ``signal``): ``flow.arrivals``, ``flow.processed``, ``flow.failed`` (counters),
``flow.queue_depth`` (gauge), ``flow.stage_latency_ms`` and ``flow.e2e_latency_ms``
(histograms), ``flow.events`` (counter).

The window is the last ``window_s`` seconds *of reported data*: it ends one second after the
newest counter or gauge point of the pipeline (the SDK sends points every few seconds, so
ending at the clock would count a part of the window that has not arrived yet and read a rate
too low). When that newest point is older than the ``stale_after_s`` threshold the window ends
at ``now`` and the view says the data is stale. Within the window:

- a rate is the counters' sum / ``window_s`` (events per second); a stage that never reported
  a metric has ``None`` there, one that reported nothing in the window has 0;
- a queue depth is the newest point of each ``flow.queue_depth`` series in the window, added
  over the series of the stage (a stage may report from several workers);
- percentiles come from the sketch bins of the raw points (``timeseries/sketch.py``, within 1 %),
  as ``POST /api/v1/metrics/query`` computes them;
- events processed and speed come from ``flow.events`` (events finished end to end); without
  it, from the last stage's ``flow.processed``;
- backlog is the sum of the stages' queue depths.

Nothing here reads the clock: ``now`` is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowdeck.flows.model import FlowSpec, Light, Limit, StageSpec, Thresholds, worst
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries import sketch

ARRIVALS: Final = "flow.arrivals"
PROCESSED: Final = "flow.processed"
FAILED: Final = "flow.failed"
QUEUE_DEPTH: Final = "flow.queue_depth"
STAGE_LATENCY: Final = "flow.stage_latency_ms"
E2E_LATENCY: Final = "flow.e2e_latency_ms"
EVENTS: Final = "flow.events"
METRICS: Final = (ARRIVALS, PROCESSED, FAILED, QUEUE_DEPTH, STAGE_LATENCY, E2E_LATENCY, EVENTS)
STAGE_COUNTERS: Final = (ARRIVALS, PROCESSED, FAILED)

DEFAULT_WINDOW_S: Final = 60
HOUR_S: Final = 3_600
LOOK_BACK_S: Final = 86_400  # the furthest back the view looks for a pipeline's last point
# A step wider than any window: every point of a window falls in one bucket, or two when the
# window crosses a multiple of it (which we add up).
_WHOLE: Final = 366 * 86_400
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = """
SELECT p.series_id, p.t, p.value FROM metric_points p JOIN (
    SELECT series_id, max(t) AS t FROM metric_points
    WHERE series_id IN ({ids}) AND t >= :a AND t <= :b GROUP BY series_id
) m ON p.series_id = m.series_id AND p.t = m.t
WHERE p.series_id IN ({ids}) AND p.t >= :a AND p.t <= :b
"""
UNSIGNED: Final = ""  # the signal of flow.events / flow.e2e_latency_ms points without one


@dataclass(frozen=True, slots=True)
class StageLive:
    name: str
    arrival_rate: float | None  # events/s arriving at the stage
    processed_rate: float | None  # events/s the stage finished
    queue_depth: float | None  # events waiting, newest sample
    latency_p95_ms: float | None
    light: Light
    reasons: tuple[str, ...]  # why the light is not green, worst first
    failed_rate: float | None = None
    queue_capacity: int | None = None
    capacity_per_s: float | None = None
    queue_fill: float | None = None  # queue_depth / queue_capacity
    load: float | None = None  # arrival_rate / capacity_per_s
    bottleneck: bool = False

    def out(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "light": self.light,
            "reasons": list(self.reasons),
            "arrival_rate": self.arrival_rate,
            "processed_rate": self.processed_rate,
            "failed_rate": self.failed_rate,
            "queue_depth": self.queue_depth,
            "queue_capacity": self.queue_capacity,
            "queue_fill": self.queue_fill,
            "capacity_per_s": self.capacity_per_s,
            "load": self.load,
            "latency_p95_ms": self.latency_p95_ms,
            "bottleneck": self.bottleneck,
        }


@dataclass(frozen=True, slots=True)
class SignalLive:
    signal: str
    events: int  # finished end to end in the window
    rate: float  # events/s
    share: float | None  # of all events finished in the window
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None

    def out(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "events": self.events,
            "rate": self.rate,
            "share": self.share,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_p99_ms": self.latency_p99_ms,
        }


@dataclass(frozen=True, slots=True)
class Trend:
    """The last minutes in steps: speed and arrivals (events/s), backlog, e2e p95, and each
    stage's queue depth. ``None`` where a step has no sample."""

    step_s: int
    times: tuple[datetime, ...]
    speed: tuple[float | None, ...]
    arrivals: tuple[float | None, ...]
    backlog: tuple[float | None, ...]
    e2e_p95_ms: tuple[float | None, ...]
    queues: Mapping[str, tuple[float | None, ...]]

    def out(self) -> dict[str, Any]:
        return {
            "step_s": self.step_s,
            "times": list(self.times),
            "speed": list(self.speed),
            "arrivals": list(self.arrivals),
            "backlog": list(self.backlog),
            "e2e_p95_ms": list(self.e2e_p95_ms),
            "queues": {k: list(v) for k, v in self.queues.items()},
        }


@dataclass(frozen=True, slots=True)
class LiveView:
    project: str
    pipeline: str
    title: str
    now: datetime
    as_of: datetime | None  # the newest counter or gauge point (None: none lately)
    window_s: int
    stale: bool
    stages: tuple[StageLive, ...]
    light: Light
    reasons: tuple[str, ...]
    events_processed: int  # in the window
    events_last_hour: int
    backlog: float | None
    speed: float | None  # events/s finished end to end
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    e2e_p99_ms: float | None
    signals: tuple[SignalLive, ...]
    bottleneck: str | None
    window_start: datetime | None = None
    window_end: datetime | None = None
    trend: Trend | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)

    def out(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "pipeline": self.pipeline,
            "title": self.title,
            "now": self.now,
            "as_of": self.as_of,
            "data_age_s": None
            if self.as_of is None
            else round((self.now - self.as_of).total_seconds(), 3),
            "stale": self.stale,
            "window_s": self.window_s,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "light": self.light,
            "reasons": list(self.reasons),
            "events_processed": self.events_processed,
            "events_last_hour": self.events_last_hour,
            "speed": self.speed,
            "backlog": self.backlog,
            "e2e_latency_ms": {
                "p50": self.e2e_p50_ms,
                "p95": self.e2e_p95_ms,
                "p99": self.e2e_p99_ms,
            },
            "bottleneck": self.bottleneck,
            "stages": [s.out() for s in self.stages],
            "signals": [s.out() for s in self.signals],
            "thresholds": self.thresholds.out(),
            "trend": None if self.trend is None else self.trend.out(),
        }


# -- how values read in reasons -----------------------------------------------------------------
def fmt_rate(value: float) -> str:
    if value >= 100 or value == 0:
        return f"{value:,.0f}/s"
    if value >= 10:
        return f"{value:.1f}/s"
    return f"{value:.2f}/s"


def fmt_ms(value: float) -> str:
    if value < 1_000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1_000:.1f} s"
    return f"{value / 60_000:.1f} min"


def fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{round(seconds / 3_600, 1):g} h"
    return f"{round(seconds / 86_400, 1):g} d"


def _bound(limit: Limit, light: Light, unit: str = "") -> str:
    """``red at 90 %`` / ``orange at 2.0 s``: the threshold that was crossed."""
    value = limit.red if light == "red" else limit.orange
    assert value is not None
    if unit == "%":
        return f"{light} at {value * 100:g} %"
    if unit == "ms":
        return f"{light} at {fmt_ms(value)}"
    return f"{light} at {value:g}"


# -- the lights: pure arithmetic ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Assessment:
    light: Light
    found: tuple[tuple[Light, str], ...]  # each reason with its own light, worst first
    queue_fill: float | None
    load: float | None

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(r for _, r in self.found)


def assess_stage(
    stage: StageSpec,
    thresholds: Thresholds,
    window_s: int,
    *,
    arrival_rate: float | None,
    processed_rate: float | None,
    failed_rate: float | None,
    queue_depth: float | None,
    latency_p95_ms: float | None,
    reported: bool,
) -> Assessment:
    """A stage's light and the reasons for it (see flows/model.py for the thresholds)."""
    found: list[tuple[Light, str]] = []
    fill = (
        queue_depth / stage.queue_capacity
        if queue_depth is not None and stage.queue_capacity
        else None
    )
    load = (
        arrival_rate / stage.capacity_per_s
        if arrival_rate is not None and stage.capacity_per_s
        else None
    )
    if not reported:
        found.append(("orange", f"no data in the last {window_s} s"))
    if processed_rate == 0 and ((arrival_rate or 0) > 0 or (queue_depth or 0) > 0):
        if (arrival_rate or 0) > 0:
            what = f"{fmt_count((arrival_rate or 0) * window_s)} events arrived"
        else:
            what = f"{fmt_count(queue_depth or 0)} events waiting"
        found.append(("red", f"stalled: {what} and none processed in {window_s} s"))
    if fill is not None:
        light = thresholds.queue_fill.light(fill)
        if light != "green":
            assert queue_depth is not None and stage.queue_capacity is not None
            found.append(
                (
                    light,
                    f"queue {fill * 100:.0f} % full ({fmt_count(queue_depth)} of "
                    f"{fmt_count(stage.queue_capacity)} events; "
                    f"{_bound(thresholds.queue_fill, light, '%')})",
                )
            )
    if load is not None:
        light = thresholds.load.light(load)
        if light != "green":
            assert arrival_rate is not None and stage.capacity_per_s is not None
            found.append(
                (
                    light,
                    f"load {load * 100:.0f} % of capacity ({fmt_rate(arrival_rate)} arriving, "
                    f"capacity {fmt_rate(stage.capacity_per_s)}; "
                    f"{_bound(thresholds.load, light, '%')})",
                )
            )
    done = (processed_rate or 0) + (failed_rate or 0)
    if failed_rate and done > 0:
        share = failed_rate / done
        light = thresholds.failure_rate.light(share)
        if light != "green":
            found.append(
                (
                    light,
                    f"{share * 100:.1f} % of events failed "
                    f"({_bound(thresholds.failure_rate, light, '%')})",
                )
            )
    latency_limit = stage.latency_p95_ms or thresholds.stage_latency_p95_ms
    light = latency_limit.light(latency_p95_ms)
    if light != "green" and latency_p95_ms is not None:
        found.append(
            (light, f"p95 latency {fmt_ms(latency_p95_ms)} ({_bound(latency_limit, light, 'ms')})")
        )
    found.sort(key=lambda f: f[0] != "red")
    return Assessment(worst(f[0] for f in found), tuple(found), fill, load)


# -- reading the points ---------------------------------------------------------------------------
class _Groups:
    """Series gathered into named groups, as the store's grouped reads take them."""

    def __init__(self) -> None:
        self.members: dict[int, int] = {}
        self.keys: list[Any] = []
        self._index: dict[Any, int] = {}

    def add(self, series_id: int, key: Any) -> None:
        g = self._index.get(key)
        if g is None:
            g = self._index[key] = len(self.keys)
            self.keys.append(key)
        self.members[series_id] = g

    def __contains__(self, key: Any) -> bool:
        return key in self._index


def _seconds(value: datetime) -> float:
    return (value - _EPOCH) / timedelta(seconds=1)


def _at(seconds: float) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _sums(store: MetricsSql, groups: _Groups, start: int, end: int) -> dict[Any, float]:
    out: dict[Any, float] = {}
    for g, _bucket, _n, total, _lo, _hi in store.summarize_groups(
        groups.members, 0, start, end, _WHOLE
    ):
        key = groups.keys[g]
        out[key] = out.get(key, 0.0) + total
    return out


def _bins(store: MetricsSql, groups: _Groups, start: int, end: int) -> dict[Any, list[sketch.Bin]]:
    out: dict[Any, list[sketch.Bin]] = {}
    for (g, _bucket), bins in store.group_bins(groups.members, 0, start, end, _WHOLE).items():
        out.setdefault(groups.keys[g], []).extend(bins)
    return out


def _latest(
    store: MetricsSql, series_ids: Iterable[int], start_us: int, end_us: int
) -> dict[int, tuple[int, float]]:
    """Each series' newest point in [start_us, end_us]: series_id → (t µs, value)."""
    ids = sorted(series_ids)
    if not ids:
        return {}
    params: dict[str, Any] = {"a": start_us, "b": end_us}
    names = []
    for i, sid in enumerate(ids):
        params[f"i{i}"] = sid
        names.append(f":i{i}")
    query = _LATEST.replace("{ids}", ", ".join(names))
    out: dict[int, tuple[int, float]] = {}
    with store.reader() as cur:
        store._q(cur, query, params)
        for sid, t, value in cur.fetchall():
            out[int(sid)] = (int(t), float(value))
    return out


def _quantiles(bins: list[sketch.Bin] | None) -> tuple[float | None, float | None, float | None]:
    if not bins:
        return None, None, None
    return (
        sketch.quantile(bins, 0.50),
        sketch.quantile(bins, 0.95),
        sketch.quantile(bins, 0.99),
    )


def live_view(
    metrics_store: MetricsSql,
    spec: FlowSpec,
    now: datetime,
    window_s: int = DEFAULT_WINDOW_S,
    *,
    trend_s: int = 0,
) -> LiveView:
    """The flow's state over the last ``window_s`` seconds of reported data (see the module's
    docstring); with ``trend_s``, also the last ``trend_s`` seconds in steps."""
    store = metrics_store
    th = spec.thresholds
    names = [s.name for s in spec.stages]
    series: dict[str, dict[int, dict[str, str]]] = {
        metric: {
            sid: tags
            for sid, tags in store.list_metric_series(spec.project, metric).items()
            if tags.get("pipeline") == spec.pipeline
        }
        for metric in METRICS
    }

    # Where the window ends: just after the newest counter or gauge point.
    now_s = _seconds(now)
    # A short look back first (what a live pipeline needs); a day when that finds nothing,
    # to say since when a pipeline has been silent.
    regular = [sid for m in (*STAGE_COUNTERS, QUEUE_DEPTH, EVENTS) for sid in series[m]]
    for lookback in (int(max(2 * window_s, th.stale_after_s) + 60), LOOK_BACK_S):
        newest = _latest(store, regular, int((now_s - lookback) * 1e6), int(now_s * 1e6))
        if newest:
            break
    horizon = max((t for t, _ in newest.values()), default=None)
    as_of = None if horizon is None else _at(horizon / 1e6)
    stale = horizon is None or now_s - horizon / 1e6 > th.stale_after_s
    end = math.ceil(now_s) if stale or horizon is None else math.floor(horizon / 1e6) + 1
    start = end - window_s

    # Counters: per stage and metric, per signal.
    counters = _Groups()
    for metric in STAGE_COUNTERS:
        for sid, tags in series[metric].items():
            if tags.get("stage") in names:
                counters.add(sid, (metric, tags["stage"]))
    for sid, tags in series[EVENTS].items():
        counters.add(sid, (EVENTS, tags.get("signal", UNSIGNED)))
    sums = _sums(store, counters, start, end)

    def rate(metric: str, stage: str) -> float | None:
        if (metric, stage) not in counters:
            return None
        return sums.get((metric, stage), 0.0) / window_s

    # Queue depth: each series' newest sample in the window, added up per stage.
    depths: dict[str, float] = {}
    for sid, (t, value) in newest.items():
        queue_tags = series[QUEUE_DEPTH].get(sid)
        if queue_tags is None or queue_tags.get("stage") not in names or t < start * 1_000_000:
            continue
        depths[queue_tags["stage"]] = depths.get(queue_tags["stage"], 0.0) + value

    # Latency sketches: per stage, per signal.
    histograms = _Groups()
    for sid, tags in series[STAGE_LATENCY].items():
        if tags.get("stage") in names:
            histograms.add(sid, (STAGE_LATENCY, tags["stage"]))
    for sid, tags in series[E2E_LATENCY].items():
        histograms.add(sid, (E2E_LATENCY, tags.get("signal", UNSIGNED)))
    bins = _bins(store, histograms, start, end)

    # Which stages reported anything in the window.
    seen: set[str] = set(depths)
    seen.update(k[1] for k in sums if k[0] in STAGE_COUNTERS)
    seen.update(k[1] for k in bins if k[0] == STAGE_LATENCY)

    stages = []
    stage_found: list[tuple[Light, str]] = []
    for stage in spec.stages:
        arrivals = rate(ARRIVALS, stage.name)
        processed = rate(PROCESSED, stage.name)
        failed = rate(FAILED, stage.name)
        depth = depths.get(stage.name)
        p95 = _quantiles(bins.get((STAGE_LATENCY, stage.name)))[1]
        verdict = assess_stage(
            stage,
            th,
            window_s,
            arrival_rate=arrivals,
            processed_rate=processed,
            failed_rate=failed,
            queue_depth=depth,
            latency_p95_ms=p95,
            reported=stage.name in seen,
        )
        stage_found += [(light, f"{stage.name}: {r}") for light, r in verdict.found]
        stages.append(
            StageLive(
                name=stage.name,
                arrival_rate=arrivals,
                processed_rate=processed,
                queue_depth=depth,
                latency_p95_ms=p95,
                light=verdict.light,
                reasons=verdict.reasons,
                failed_rate=failed,
                queue_capacity=stage.queue_capacity,
                capacity_per_s=stage.capacity_per_s,
                queue_fill=verdict.queue_fill,
                load=verdict.load,
            )
        )
    bottleneck = _bottleneck(stages)
    if bottleneck is not None:
        stages = [replace(s, bottleneck=s.name == bottleneck) for s in stages]

    # Events finished end to end, by signal.
    last = spec.stages[-1].name
    by_signal = {k[1]: v for k, v in sums.items() if k[0] == EVENTS}
    if series[EVENTS]:
        events = round(sum(by_signal.values()))
        speed: float | None = sum(by_signal.values()) / window_s
    else:
        last_rate = rate(PROCESSED, last)
        events = round(last_rate * window_s) if last_rate is not None else 0
        speed = last_rate
    hour = _Groups()
    for sid in series[EVENTS] or {
        sid for sid, tags in series[PROCESSED].items() if tags.get("stage") == last
    }:
        hour.add(sid, "events")
    events_last_hour = round(_sums(store, hour, end - HOUR_S, end).get("events", 0.0))

    e2e_all = [b for k, v in bins.items() if k[0] == E2E_LATENCY for b in v]
    p50, p95, p99 = _quantiles(e2e_all)
    signal_names = list(spec.signals)
    signal_names += sorted(
        ({*by_signal} | {k[1] for k in bins if k[0] == E2E_LATENCY})
        - set(signal_names)
        - {UNSIGNED}
    )
    if UNSIGNED in by_signal or (E2E_LATENCY, UNSIGNED) in bins:
        signal_names.append(UNSIGNED)
    signals = []
    for name in signal_names:
        count = by_signal.get(name, 0.0)
        s50, s95, s99 = _quantiles(bins.get((E2E_LATENCY, name)))
        signals.append(
            SignalLive(
                signal=name,
                events=round(count),
                rate=count / window_s,
                share=count / events if events else None,
                latency_p50_ms=s50,
                latency_p95_ms=s95,
                latency_p99_ms=s99,
            )
        )

    backlog = sum(depths.values()) if depths else None
    flow_found: list[tuple[Light, str]] = []
    if horizon is None:
        flow_found.append(("orange", f"no data in the last {fmt_age(lookback)}"))
    elif stale:
        flow_found.append(("orange", f"no data for {fmt_age(now_s - horizon / 1e6)}"))
    light = th.e2e_latency_p95_ms.light(p95)
    if light != "green" and p95 is not None:
        flow_found.append(
            (
                light,
                f"end-to-end p95 {fmt_ms(p95)} ({_bound(th.e2e_latency_p95_ms, light, 'ms')})",
            )
        )
    light = th.backlog.light(backlog)
    if light != "green" and backlog is not None:
        flow_found.append(
            (light, f"backlog {fmt_count(backlog)} events ({_bound(th.backlog, light)})")
        )
    every = [*flow_found, *stage_found]
    if stale:  # the stages' "no data" says the same again
        every = [f for f in every if not f[1].endswith(f"no data in the last {window_s} s")]
    every.sort(key=lambda f: f[0] != "red")
    overall = worst([*(f[0] for f in flow_found), *(s.light for s in stages)])

    trend = _trend(store, spec, series, end, trend_s) if trend_s > 0 else None
    return LiveView(
        project=spec.project,
        pipeline=spec.pipeline,
        title=spec.title,
        now=now,
        as_of=as_of,
        window_s=window_s,
        stale=stale,
        stages=tuple(stages),
        light=overall,
        reasons=tuple(r for _, r in every),
        events_processed=events,
        events_last_hour=events_last_hour,
        backlog=backlog,
        speed=speed,
        e2e_p50_ms=p50,
        e2e_p95_ms=p95,
        e2e_p99_ms=p99,
        signals=tuple(signals),
        bottleneck=bottleneck,
        window_start=_at(start),
        window_end=_at(end),
        trend=trend,
        thresholds=th,
    )


def _bottleneck(stages: list[StageLive]) -> str | None:
    """Where pressure builds first: the fullest queue relative to its capacity, else the
    longest queue, else the highest load; None when every queue is empty and no load is
    above green."""
    filled = [s for s in stages if s.queue_fill is not None and s.queue_fill > 0]
    if filled:
        return max(filled, key=lambda s: s.queue_fill or 0).name
    waiting = [s for s in stages if (s.queue_depth or 0) > 0]
    if waiting:
        return max(waiting, key=lambda s: s.queue_depth or 0).name
    loaded = [s for s in stages if s.load is not None and s.light != "green"]
    if loaded:
        return max(loaded, key=lambda s: s.load or 0).name
    return None


def trend_step(trend_s: int) -> int:
    """30 steps over the trend, at least 10 s each: a step holds several reports, so a rate
    read from it does not swing with how many reports a step happened to catch."""
    return max(10, trend_s // 30)


def _trend(
    store: MetricsSql,
    spec: FlowSpec,
    series: Mapping[str, Mapping[int, Mapping[str, str]]],
    end: int,
    trend_s: int,
) -> Trend:
    step = trend_step(trend_s)
    t_end = math.ceil(end / step) * step
    t_start = t_end - trend_s
    buckets = list(range(t_start, t_end, step))
    names = [s.name for s in spec.stages]
    first, last = names[0], names[-1]

    counters = _Groups()
    for sid in series[EVENTS]:
        counters.add(sid, "speed")
    for sid, tags in series[ARRIVALS].items():
        if tags.get("stage") == first:
            counters.add(sid, "arrivals")
    if not series[EVENTS]:
        for sid, tags in series[PROCESSED].items():
            if tags.get("stage") == last:
                counters.add(sid, "speed")
    totals: dict[tuple[str, int], float] = {}
    for g, bucket, _n, total, _lo, _hi in store.summarize_groups(
        counters.members, 0, t_start, t_end, step
    ):
        totals[(counters.keys[g], bucket)] = total

    def rates(key: str) -> tuple[float | None, ...]:
        if key not in counters:
            return tuple(None for _ in buckets)
        out: list[float | None] = []
        for b in buckets:
            seconds = min(b + step, end) - b
            out.append(totals.get((key, b), 0.0) / seconds if seconds > 0 else None)
        return tuple(out)

    queues = _Groups()
    for sid, tags in series[QUEUE_DEPTH].items():
        if tags.get("stage") in names:
            queues.add(sid, sid)
    per_stage: dict[str, dict[int, float]] = {}
    for g, bucket, n, total, _lo, _hi in store.summarize_groups(
        queues.members, 0, t_start, t_end, step
    ):
        stage = series[QUEUE_DEPTH][queues.keys[g]]["stage"]
        cells = per_stage.setdefault(stage, {})
        cells[bucket] = cells.get(bucket, 0.0) + total / n
    stage_queues = {
        name: tuple(per_stage[name].get(b) for b in buckets) for name in names if name in per_stage
    }
    backlog = tuple(
        sum(v for v in column if v is not None) if any(v is not None for v in column) else None
        for column in zip(*stage_queues.values(), strict=True)
    ) or tuple(None for _ in buckets)

    e2e = _Groups()
    for sid in series[E2E_LATENCY]:
        e2e.add(sid, "e2e")
    sketches = store.group_bins(e2e.members, 0, t_start, t_end, step)
    p95 = tuple(
        sketch.quantile(sketches[(0, b)], 0.95) if (0, b) in sketches else None for b in buckets
    )
    return Trend(
        step_s=step,
        times=tuple(_at(b) for b in buckets),
        speed=rates("speed"),
        arrivals=rates("arrivals"),
        backlog=backlog,
        e2e_p95_ms=p95,
        queues=stage_queues,
    )
