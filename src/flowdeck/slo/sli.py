"""Reading SLIs: the good and total units of an SLO over a time range, from the store.

- **latency**: events of ``flow.e2e_latency_ms`` (tag ``pipeline``) within ``threshold_ms``,
  from the bins of the percentile sketch (``timeseries/sketch.py``), merged in SQL over the
  range: the 1-minute rollups for ranges up to a day, the hourly ones beyond (so a window's
  start is rounded down to the minute or the hour). See ``compute.latency_tally`` for the
  accuracy (the threshold's bin, a factor 1.0202 wide, counts as within).
- **throughput**: whole cycles with at least ``min_events`` of ``flow.events`` (the sum of
  its counter points, every signal), counted from the first cycle the pipeline reported.
- **success_rate**: runs of the pipeline (in ``env`` when set) that finished (SUCCESS or
  FAILED) in the range, by their end.
- **freshness**: seconds of the range at which the pipeline's last successful run had
  ended less than ``max_age`` before, counted from its first run.

Throughput and the run-based kinds read the last 30 days once (:func:`load`) and answer
every window and the history from that; latency asks the database per range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from flowdeck.slo.compute import (
    Tally,
    cycles_tally,
    fresh_tally,
    latency_tally,
    runs_tally,
)
from flowdeck.slo.model import DEFAULT_CYCLE, Slo
from flowdeck.store.sql import SqlStore
from flowdeck.timeseries.query import choose_level

LATENCY_METRIC: Final = "flow.e2e_latency_ms"
EVENTS_METRIC: Final = "flow.events"
LOOKBACK: Final = 30 * 86_400
# A step no bucket of ours reaches across: the whole range adds up to one bucket. A
# multiple of every rollup level.
_ONE_BUCKET: Final = 86_400 * 10**7
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def seconds(t: datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return (t - _EPOCH) / timedelta(seconds=1)


class Source(Protocol):
    def tally(self, start: float, end: float) -> Tally:
        """Good and total units in ``[start, end)`` (seconds since 1970)."""
        ...

    def history(self, start: int, end: int, step: int) -> list[tuple[int, Tally]]:
        """The tally of each ``step``-wide bucket of ``[start, end)``, oldest first (buckets
        without units are left out)."""
        ...


def _members(store: SqlStore, slo: Slo, metric: str) -> dict[int, int]:
    """The series of ``metric`` of the SLO's pipeline, all in one group (0)."""
    series = store.list_metric_series(slo.project, metric)
    return {sid: 0 for sid, tags in series.items() if tags.get("pipeline") == slo.pipeline}


class LatencySource:
    def __init__(self, store: SqlStore, slo: Slo) -> None:
        self.store = store
        self.threshold = float(slo.threshold_ms or 0)
        self.members = _members(store, slo, LATENCY_METRIC)

    def tally(self, start: float, end: float) -> Tally:
        if not self.members:
            return Tally()
        level = 60 if end - start <= 86_400 else 3_600
        a = math.floor(start / level) * level
        b = math.floor(end) + 1
        bins = self.store.group_bins(self.members, level, a, b, _ONE_BUCKET)
        return latency_tally((x for group in bins.values() for x in group), self.threshold)

    def history(self, start: int, end: int, step: int) -> list[tuple[int, Tally]]:
        if not self.members:
            return []
        level = choose_level(step)
        bins = self.store.group_bins(self.members, level, start, end, step)
        out = [(bucket, latency_tally(b, self.threshold)) for (_, bucket), b in bins.items()]
        return sorted(out, key=lambda x: x[0])


class ThroughputSource:
    def __init__(self, store: SqlStore, slo: Slo, now: float) -> None:
        self.cycle = int(slo.cycle_s or DEFAULT_CYCLE)
        self.min_events = float(slo.min_events or 1)
        self.sums: dict[int, float] = {}
        members = _members(store, slo, EVENTS_METRIC)
        if members:
            a = math.floor((now - LOOKBACK) / self.cycle) * self.cycle - self.cycle
            rows = store.summarize_groups(
                members, choose_level(self.cycle), a, math.floor(now) + 1, self.cycle
            )
            self.sums = {int(bucket): float(total) for _, bucket, _, total, _, _ in rows}
        self.since = min(self.sums) if self.sums else None

    def tally(self, start: float, end: float, *, last_cycle: bool = True) -> Tally:
        if self.since is None:
            return Tally()
        return cycles_tally(
            self.sums,
            math.floor(start),
            math.floor(end),
            self.cycle,
            self.min_events,
            self.since,
            last_cycle=last_cycle,
        )

    def history(self, start: int, end: int, step: int) -> list[tuple[int, Tally]]:
        step = max(step, self.cycle)
        out = []
        for bucket in range(start - start % step, end, step):
            t = self.tally(bucket, min(bucket + step, end), last_cycle=False)
            if t.total:
                out.append((bucket, t))
        return out


def _env_clause(slo: Slo, params: dict[str, Any]) -> str:
    if slo.env is None:
        return ""
    params["env"] = slo.env
    return " AND env = :env"


class RunsSource:
    """success_rate: finished runs by their end time."""

    def __init__(self, store: SqlStore, slo: Slo, now: float) -> None:
        params: dict[str, Any] = {
            "project": slo.project,
            "pipeline": slo.pipeline,
            "a": _EPOCH + timedelta(seconds=now - LOOKBACK - 86_400),
        }
        env = _env_clause(slo, params)
        with store.reader() as cur:
            store._q(
                cur,
                "SELECT ended_at, status FROM runs WHERE project = :project "
                f"AND pipeline = :pipeline{env} AND status IN ('SUCCESS', 'FAILED') "
                "AND ended_at IS NOT NULL AND ended_at >= :a",
                params,
            )
            rows = cur.fetchall()
        self.finished: list[tuple[float, bool]] = sorted(
            (seconds(r[0]), r[1] == "SUCCESS") for r in rows
        )

    def tally(self, start: float, end: float) -> Tally:
        return runs_tally(self.finished, start, end)

    def history(self, start: int, end: int, step: int) -> list[tuple[int, Tally]]:
        out = []
        for bucket in range(start - start % step, end, step):
            t = self.tally(bucket, bucket + step)
            if t.total:
                out.append((bucket, t))
        return out


class FreshnessSource:
    """freshness: the successes' end times, the last one before the lookback included."""

    def __init__(self, store: SqlStore, slo: Slo, now: float) -> None:
        self.max_age = float(slo.max_age_s or 0)
        cut = _EPOCH + timedelta(seconds=now - LOOKBACK - 86_400 - self.max_age)
        params: dict[str, Any] = {"project": slo.project, "pipeline": slo.pipeline, "a": cut}
        env = _env_clause(slo, params)
        where = f"project = :project AND pipeline = :pipeline{env}"
        success = f"{where} AND status = 'SUCCESS' AND ended_at IS NOT NULL"
        with store.reader() as cur:
            store._q(cur, f"SELECT ended_at FROM runs WHERE {success} AND ended_at >= :a", params)
            ends = [seconds(r[0]) for r in cur.fetchall()]
            store._q(
                cur, f"SELECT max(ended_at) FROM runs WHERE {success} AND ended_at < :a", params
            )
            # fetchall: DuckDB leaves a result read with fetchone unfinished
            (before,) = cur.fetchall()
            first_params = {k: v for k, v in params.items() if k != "a"}
            store._q(cur, f"SELECT min(sort_at) FROM runs WHERE {where}", first_params)
            (first,) = cur.fetchall()
        if before[0] is not None:
            ends.append(seconds(before[0]))
        self.successes: Sequence[float] = sorted(ends)
        self.since = seconds(first[0]) if first[0] is not None else None

    def tally(self, start: float, end: float) -> Tally:
        return fresh_tally(self.successes, self.max_age, start, end, self.since)

    def history(self, start: int, end: int, step: int) -> list[tuple[int, Tally]]:
        out = []
        for bucket in range(start - start % step, end, step):
            t = self.tally(bucket, min(bucket + step, end))
            if t.total:
                out.append((bucket, t))
        return out


def load(store: SqlStore, slo: Slo, now: datetime) -> Source:
    """The SLO's SLI source as of ``now``."""
    t = seconds(now)
    if slo.kind == "latency":
        return LatencySource(store, slo)
    if slo.kind == "throughput":
        return ThroughputSource(store, slo, t)
    if slo.kind == "success_rate":
        return RunsSource(store, slo, t)
    return FreshnessSource(store, slo, t)


def tallies(source: Source, now: datetime, windows: Mapping[str, int]) -> dict[str, Tally]:
    """The tally of each window ending at ``now``."""
    t = seconds(now)
    return {name: source.tally(t - width, t) for name, width in windows.items()}
