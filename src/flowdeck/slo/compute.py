"""SLO arithmetic, pure: nothing here reads the clock or the database.

Every kind of SLO comes down to a :class:`Tally` over a window: good units out of all units,
where a unit is an event (latency), a cycle (throughput), a finished run (success rate) or a
second (freshness). Then, for an objective ``o`` in percent:

- compliance = good / total, in percent (None without units);
- burn rate = (1 − good / total) / (1 − o / 100): how many times faster than the objective
  allows the error budget is spent (1 spends exactly the budget over the window);
- error budget remaining (over 30 days) = 1 − burn rate over 30 days, in percent: 100 when
  nothing was bad, 0 when the budget is spent, below 0 when overspent.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from flowdeck.timeseries import sketch

# Window name → seconds: the compliance windows and the burn-rate windows.
WINDOWS: Final[dict[str, int]] = {
    "5m": 300,
    "30m": 1_800,
    "1h": 3_600,
    "6h": 21_600,
    "24h": 86_400,
    "7d": 604_800,
    "30d": 2_592_000,
}
COMPLIANCE_WINDOWS: Final = ("1h", "24h", "7d", "30d")
BURN_WINDOWS: Final = ("5m", "30m", "1h", "6h")
BUDGET_WINDOW: Final = "30d"


@dataclass(frozen=True, slots=True)
class Tally:
    good: float = 0.0
    total: float = 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.good + other.good, self.total + other.total)


def compliance(t: Tally) -> float | None:
    """The share of good units, in percent; None when there were none."""
    if t.total <= 0:
        return None
    return 100.0 * t.good / t.total


def burn_rate(t: Tally, objective: float) -> float | None:
    """Bad fraction / allowed bad fraction (1 − objective/100); None without units."""
    if t.total <= 0:
        return None
    bad = max(t.total - t.good, 0.0) / t.total
    return bad / (1 - objective / 100)


def budget_remaining(t: Tally, objective: float) -> float | None:
    """The error budget left over the tally's window, in percent (negative: overspent)."""
    burn = burn_rate(t, objective)
    return None if burn is None else 100.0 * (1 - burn)


def passing(t: Tally, objective: float) -> bool:
    """The objective is met (nothing to judge counts as met)."""
    share = compliance(t)
    return share is None or share >= objective


def hours_left(burn: float | None, budget_pct: float | None, window_s: int) -> float | None:
    """At a steady ``burn`` the budget left (``budget_pct`` of a ``window_s`` budget) lasts
    this many hours; None when it is not being spent."""
    if burn is None or budget_pct is None or burn <= 0:
        return None
    return max(budget_pct, 0.0) / 100 * window_s / burn / 3600


# -- tallies of each kind -----------------------------------------------------------------
def latency_tally(bins: Iterable[sketch.Bin], threshold_ms: float) -> Tally:
    """Events within the threshold out of all, from the percentile sketch's bins: a bin
    counts as within when its key is at most the key of the threshold's bin (zero and
    negative bins always do). The sketch keeps a value within 1 % of its bin's
    representative value; the threshold's whole bin counts as within, so an event at most
    one bin width (a factor 1.0202) above the threshold may count as good, and no event at
    or under it ever counts as bad."""
    _, limit = sketch.bin_of(threshold_ms)
    good = total = 0
    for sign, key, n in bins:
        total += n
        if sign <= 0 or key <= limit:
            good += n
    return Tally(float(good), float(total))


def cycles_tally(
    sums: Mapping[int, float],
    start: int,
    end: int,
    cycle: int,
    min_events: float,
    since: int,
    *,
    last_cycle: bool = True,
) -> Tally:
    """Throughput: of the whole cycles ``[k·cycle, (k+1)·cycle)`` that ended in
    ``(start, end]`` and started at or after ``since`` (the first cycle the pipeline
    reported), those whose events (``sums``: cycle start → events) reach ``min_events``. A
    window shorter than a cycle counts the last cycle that ended, so short burn-rate windows
    still see something (unless ``last_cycle`` is False: a history's buckets must not count
    a cycle twice). A cycle without any report counts as a cycle without events."""
    if last_cycle:
        start = min(start, end - cycle)
    first = max((start // cycle + 1) * cycle - cycle, -(-since // cycle) * cycle)
    good = total = 0
    c = first
    while c + cycle <= end:
        total += 1
        if sums.get(c, 0.0) >= min_events:
            good += 1
        c += cycle
    return Tally(float(good), float(total))


def runs_tally(finished: Sequence[tuple[float, bool]], start: float, end: float) -> Tally:
    """Success rate: the runs that finished in ``[start, end)`` (``finished``: (end time in
    seconds, succeeded), sorted by time) and how many succeeded."""
    times = [t for t, _ in finished]
    lo = bisect.bisect_left(times, start)
    hi = bisect.bisect_left(times, end)
    chosen = finished[lo:hi]
    return Tally(float(sum(1 for _, ok in chosen if ok)), float(len(chosen)))


def fresh_tally(
    successes: Sequence[float], max_age: float, start: float, end: float, since: float | None
) -> Tally:
    """Freshness: the seconds of ``[max(start, since), end)`` at which the last success
    (``successes``: end times in seconds, sorted, including the last one before ``start``)
    was younger than ``max_age``. ``since`` is the pipeline's first run: time before it is
    not counted; None (it never ran) counts nothing."""
    if since is None:
        return Tally()
    lo = max(start, since)
    if lo >= end:
        return Tally()
    fresh = 0.0
    covered_to = lo
    for t in successes:
        a, b = max(t, covered_to), min(t + max_age, end)
        if b > a:
            fresh += b - a
            covered_to = b
        if t >= end:
            break
    return Tally(fresh, end - lo)


@dataclass(frozen=True, slots=True)
class Figures:
    """What an SLO's tallies over the windows come to."""

    compliance: dict[str, float | None]
    burn_rates: dict[str, float | None]
    budget_remaining: float | None
    sli: float | None
    passing: bool


def figures(tallies: Mapping[str, Tally], objective: float, window: str) -> Figures:
    """Compliance per compliance window, burn rate per window, the 30-day budget left, and
    pass/fail now (compliance over ``window`` meets the objective)."""
    return Figures(
        compliance={w: compliance(tallies.get(w, Tally())) for w in COMPLIANCE_WINDOWS},
        burn_rates={w: burn_rate(tallies.get(w, Tally()), objective) for w in WINDOWS},
        budget_remaining=budget_remaining(tallies.get(BUDGET_WINDOW, Tally()), objective),
        sli=compliance(tallies.get(window, Tally())),
        passing=passing(tallies.get(window, Tally()), objective),
    )
