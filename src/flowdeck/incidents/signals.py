"""What the detector reads, from the store: each declared flow's stage signals (the flow's
live view, as its page shows it, plus when each stage last sent a point) and the SLOs'
states."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowdeck.flows.live import (
    ARRIVALS,
    FAILED,
    PROCESSED,
    QUEUE_DEPTH,
    STAGE_LATENCY,
    live_view,
)
from flowdeck.flows.model import FlowSpec
from flowdeck.incidents.detect import FlowSignals, SloSignal, StageSignal
from flowdeck.slo.service import SloState
from flowdeck.store.metrics_sql import MetricsSql

STAGE_METRICS: Final = (ARRIVALS, PROCESSED, FAILED, QUEUE_DEPTH, STAGE_LATENCY)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NEWEST: Final = (
    "SELECT series_id, max(t) FROM metric_points "
    "WHERE series_id IN ({ids}) AND t >= :a AND t <= :b GROUP BY series_id"
)


def _us(value: datetime) -> int:
    return int((value - _EPOCH) / timedelta(microseconds=1))


def last_points(
    metrics: MetricsSql, spec: FlowSpec, now: datetime, lookback_s: float
) -> dict[str, datetime]:
    """Each stage's newest point of any stage metric within ``lookback_s`` (stage → time);
    stages without one are left out."""
    names = {s.name for s in spec.stages}
    stage_of: dict[int, str] = {}
    for metric in STAGE_METRICS:
        for sid, tags in metrics.list_metric_series(spec.project, metric).items():
            if tags.get("pipeline") == spec.pipeline and tags.get("stage") in names:
                stage_of[sid] = tags["stage"]
    if not stage_of:
        return {}
    params: dict[str, Any] = {
        "a": _us(now - timedelta(seconds=lookback_s)),
        "b": _us(now),
    }
    ids = []
    for i, sid in enumerate(sorted(stage_of)):
        params[f"i{i}"] = sid
        ids.append(f":i{i}")
    out: dict[str, datetime] = {}
    with metrics.reader() as cur:
        metrics._q(cur, _NEWEST.replace("{ids}", ", ".join(ids)), params)
        for sid, t in cur.fetchall():
            at = _EPOCH + timedelta(microseconds=int(t))
            stage = stage_of[int(sid)]
            if stage not in out or at > out[stage]:
                out[stage] = at
    return out


def _total(rate: float | None, window_s: int) -> float | None:
    return None if rate is None else rate * window_s


def flow_signals(
    metrics: MetricsSql, spec: FlowSpec, now: datetime, window_s: int, lookback_s: float
) -> FlowSignals:
    """A flow's signals over the window, from its live view (so the incident and the flow
    page tell the same numbers)."""
    view = live_view(metrics, spec, now, window_s)
    last = last_points(metrics, spec, now, lookback_s)
    stages = []
    for declared, live in zip(spec.stages, view.stages, strict=True):
        stages.append(
            StageSignal(
                name=declared.name,
                queue_capacity=declared.queue_capacity,
                capacity_per_s=declared.capacity_per_s,
                queue_depth=live.queue_depth,
                arrivals=_total(live.arrival_rate, window_s),
                processed=_total(live.processed_rate, window_s),
                failed=_total(live.failed_rate, window_s),
                latency_p95_ms=live.latency_p95_ms,
                last_point_at=last.get(declared.name),
            )
        )
    return FlowSignals(
        project=spec.project,
        pipeline=spec.pipeline,
        stages=tuple(stages),
        window_s=window_s,
        e2e_p95_ms=view.e2e_p95_ms,
        events=float(view.events_processed),
    )


def slo_signals(states: Sequence[SloState]) -> list[SloSignal]:
    """Every SLO; one whose SLI could not be read is not ``known`` (an open incident about
    it stays as it is)."""
    return [
        SloSignal(
            project=s.project,
            pipeline=s.pipeline,
            name=s.name,
            kind=s.kind,
            objective=s.objective,
            passing=s.passing,
            sli=s.sli,
            budget_remaining=s.budget_remaining,
            failing_since=s.failing_since,
            known=s.error is None,
        )
        for s in states
    ]
