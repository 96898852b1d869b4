"""SLOs at work: each one's state now (pass/fail, compliance per window, error budget left,
burn rates), its history for a chart, and the facts the alert engine's ``slo_burn_rate``
rules evaluate.

Time is a parameter: :meth:`SloService.states` takes ``now``. States are kept for
``cache_s`` seconds (the alert tick, the incident detector and the pages all ask). When an
SLO is first seen failing, the time it started failing is worked out from its history
(:func:`failing_since`: the compliance over its window, rolled back in steps of a twelfth of
the window) and then remembered while it keeps failing, so a restart or another replica
gives the same answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from flowdeck.alerts.engine import SloFacts
from flowdeck.errors import FlowdeckError
from flowdeck.slo import compute, sli
from flowdeck.slo.model import Slo
from flowdeck.slo.store import SloStore
from flowdeck.store.sql import SqlStore

log = logging.getLogger("flowdeck.slo")

# History ranges of the SLO page: range → bucket width (seconds).
HISTORY_STEPS: Final[dict[str, int]] = {"24h": 900, "7d": 3_600, "30d": 21_600}
DEFAULT_HISTORY: Final = "7d"


@dataclass(frozen=True, slots=True)
class SloState:
    name: str
    project: str
    pipeline: str
    kind: str
    objective: float  # percent
    passing: bool  # compliance over the SLO's window meets the objective (no data: True)
    sli: float | None  # compliance over the SLO's window, percent; None without data
    compliance: dict[str, float | None]  # "1h", "24h", "7d", "30d" → percent
    budget_remaining: float | None  # percent of the 30-day error budget left (< 0: overspent)
    burn_rates: dict[str, float | None]  # "5m", "30m", "1h", "6h" → times the allowed pace
    failing_since: datetime | None
    env: str | None = None
    window: str = "1h"
    description: str = ""
    objective_text: str = ""  # the objective in words
    evaluated_at: datetime | None = None
    error: str | None = None  # the SLI could not be read
    # Every window's burn rate (the alert rules may use 24h, 7d, 30d too).
    all_burn_rates: Mapping[str, float | None] = field(default_factory=dict)
    # Good and total units per window (events, cycles, runs or seconds).
    tallies: Mapping[str, compute.Tally] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """ "passing", "failing" or "no_data"."""
        if self.error is not None or self.sli is None:
            return "no_data"
        return "passing" if self.passing else "failing"

    def out(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "project": self.project,
            "pipeline": self.pipeline,
            "env": self.env,
            "kind": self.kind,
            "objective": self.objective,
            "objective_text": self.objective_text,
            "window": self.window,
            "status": self.status,
            "passing": self.passing,
            "sli": self.sli,
            "compliance": self.compliance,
            "budget_remaining": self.budget_remaining,
            "burn_rates": self.burn_rates,
            "failing_since": self.failing_since,
            "evaluated_at": self.evaluated_at,
            "error": self.error,
            "units": {
                w: {"good": t.good, "total": t.total}
                for w, t in self.tallies.items()
                if w in compute.COMPLIANCE_WINDOWS
            },
        }


class SloService:
    def __init__(self, store: SqlStore, *, cache_s: float = 5.0) -> None:
        self.store = store
        self.db = SloStore(store)
        self.cache_s = cache_s
        self._lock = threading.Lock()
        # (the clock's time asked about, when on this process's own clock, the states)
        self._cached: tuple[datetime, float, list[SloState]] | None = None
        self._failing: dict[str, datetime] = {}

    def forget(self) -> None:
        """Drop the cached states (an SLO was created, changed or deleted)."""
        with self._lock:
            self._cached = None

    def state(self, slo: Slo, now: datetime) -> SloState:
        source: sli.Source | None = None
        try:
            source = sli.load(self.store, slo, now)
            tallies = sli.tallies(source, now, compute.WINDOWS)
            error = None
        except FlowdeckError as exc:
            log.warning("SLO %s: could not read its SLI: %s", slo.name, exc)
            tallies, error = {}, str(exc)
        fig = compute.figures(tallies, slo.objective, slo.window)
        failing = error is None and not fig.passing
        since: datetime | None = None
        if failing:
            with self._lock:
                since = self._failing.get(slo.name)
            if since is None and source is not None:
                try:
                    since = failing_since(source, slo, now)
                except FlowdeckError as exc:
                    log.warning("SLO %s: could not read its history: %s", slo.name, exc)
                since = since or now
                with self._lock:
                    since = self._failing.setdefault(slo.name, since)
        else:
            with self._lock:
                self._failing.pop(slo.name, None)
        return SloState(
            name=slo.name,
            project=slo.project,
            pipeline=slo.pipeline,
            kind=slo.kind,
            objective=slo.objective,
            passing=not failing,
            sli=fig.sli,
            compliance=fig.compliance,
            budget_remaining=fig.budget_remaining,
            burn_rates={w: fig.burn_rates[w] for w in compute.BURN_WINDOWS},
            failing_since=since,
            env=slo.env,
            window=slo.window,
            description=slo.description,
            objective_text=slo.describe(),
            evaluated_at=now,
            error=error,
            all_burn_rates=fig.burn_rates,
            tallies=tallies,
        )

    def states(self, now: datetime) -> list[SloState]:
        """Every SLO's state at ``now``, by name (kept for ``cache_s`` seconds, of the
        clock and of real time: a clock that stands still, as a test's does, must not keep
        states from before the points that arrived since)."""
        with self._lock:
            cached = self._cached
        if (
            cached is not None
            and 0 <= (now - cached[0]).total_seconds() < self.cache_s
            and time.monotonic() - cached[1] < self.cache_s
        ):
            return cached[2]
        taken = time.monotonic()
        slos = self.db.list_slos()
        out = [self.state(s, now) for s in slos]
        names = {s.name for s in slos}
        with self._lock:
            self._cached = (now, taken, out)
            for gone in set(self._failing) - names:
                del self._failing[gone]
        return out

    def facts(self, now: datetime) -> list[SloFacts]:
        """What the alert engine's slo_burn_rate rules evaluate."""
        out = []
        for s in self.states(now):
            if s.error is not None:
                continue  # unknown is not "not burning": the rule's alert stays as it is
            labels = {"slo_kind": s.kind}
            if s.env is not None:
                labels["env"] = s.env
            out.append(
                SloFacts(s.project, s.name, s.pipeline, s.objective, s.all_burn_rates, labels)
            )
        return out

    def history(self, slo: Slo, now: datetime, span: str = DEFAULT_HISTORY) -> dict[str, Any]:
        """Per bucket of the range: the SLI (compliance within the bucket) and its units,
        for the SLO page's chart."""
        step = HISTORY_STEPS[span]
        end = int(sli.seconds(now))
        start = end - compute.WINDOWS[span]
        start -= start % step
        source = sli.load(self.store, slo, now)
        points = []
        for bucket, t in source.history(start, end + 1, step):
            points.append(
                {
                    "t": _iso(bucket),
                    "sli": compute.compliance(t),
                    "good": t.good,
                    "total": t.total,
                    "burn_rate": compute.burn_rate(t, slo.objective),
                }
            )
        return {
            "range": span,
            "step": step,
            "start": _iso(start),
            "end": _iso(end),
            "objective": slo.objective,
            "unit": UNITS[slo.kind],
            "points": points,
        }


def failing_since(source: sli.Source, slo: Slo, now: datetime) -> datetime | None:
    """When the SLO started failing: the compliance over its window ending at each step
    boundary before ``now``, rolled back from the latest to the last one that met the
    objective (or had no units). Steps are a twelfth of the window, looking back up to
    seven windows (at least a day, at most 30 days); the step in which it started is then
    looked at again in steps twelve times finer. None when it failed all along."""
    width = compute.WINDOWS[slo.window]
    coarse = _step(slo, width // 12)
    fine = _step(slo, coarse // 12)
    lookback = min(max(7 * width, 86_400), compute.WINDOWS["30d"])
    since = _walk(source, slo, now, now, coarse, lookback)
    if since is None or fine >= coarse:
        return since
    return _walk(source, slo, now, since, fine, coarse) or since


def _step(slo: Slo, seconds: int) -> int:
    """A step of about ``seconds``: whole minutes, whole cycles for throughput."""
    step = max(seconds - seconds % 60, 60)
    if slo.kind == "throughput":
        cycle = int(slo.cycle_s or 60)
        step = max(step // cycle, 1) * cycle
    return step


def _walk(
    source: sli.Source, slo: Slo, now: datetime, until: datetime, step: int, lookback: int
) -> datetime | None:
    """From the last step boundary at or before ``until`` back over ``lookback``: the
    boundary after the latest one whose window met the objective (``until`` when that is
    the very first), or None."""
    width = compute.WINDOWS[slo.window]
    per_window = max(width // step, 1)
    end = int(sli.seconds(until))
    last = end - end % step
    first = last - (lookback // step) * step
    buckets = dict(source.history(first - per_window * step, int(sli.seconds(now)) + 1, step))
    since = until
    boundary = last
    while boundary >= first:
        t = compute.Tally()
        for k in range(1, per_window + 1):
            t = t + buckets.get(boundary - k * step, compute.Tally())
        if compute.passing(t, slo.objective):
            return since
        since = _at(boundary)
        boundary -= step
    return None


def _at(t: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t)


UNITS: Final = {
    "latency": "events",
    "throughput": "cycles",
    "success_rate": "runs",
    "freshness": "seconds",
}


def _iso(t: int) -> str:
    return (
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=t)).isoformat().replace("+00:00", "Z")
    )
