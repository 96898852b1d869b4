"""SLO arithmetic against cases worked out by hand."""

from __future__ import annotations

import pytest

from flowdeck.slo import compute
from flowdeck.slo.compute import Tally
from flowdeck.timeseries import sketch


def test_compliance_burn_rate_and_budget_by_hand() -> None:
    # 99 % objective, 1,000 events, 985 good: 1.5 % bad where 1 % is allowed.
    t = Tally(985, 1000)
    assert compute.compliance(t) == pytest.approx(98.5)
    assert compute.burn_rate(t, 99.0) == pytest.approx(1.5)
    assert compute.budget_remaining(t, 99.0) == pytest.approx(-50.0)  # overspent by half
    assert not compute.passing(t, 99.0)
    # 95 %, 200 runs, 195 succeeded: 2.5 % bad of 5 % allowed → half the budget left.
    t = Tally(195, 200)
    assert compute.burn_rate(t, 95.0) == pytest.approx(0.5)
    assert compute.budget_remaining(t, 95.0) == pytest.approx(50.0)
    assert compute.passing(t, 95.0)
    # 99.9 %, exactly the allowed 10 bad of 10,000: burn 1, budget 0, still passing.
    t = Tally(9990, 10_000)
    assert compute.burn_rate(t, 99.9) == pytest.approx(1.0)
    assert compute.budget_remaining(t, 99.9) == pytest.approx(0.0, abs=1e-9)
    assert compute.passing(t, 99.9)
    # Nothing bad: burn 0, the whole budget left.
    assert compute.burn_rate(Tally(50, 50), 99.0) == 0.0
    assert compute.budget_remaining(Tally(50, 50), 99.0) == 100.0


def test_no_units_is_no_data_and_not_a_failure() -> None:
    assert compute.compliance(Tally()) is None
    assert compute.burn_rate(Tally(), 99.0) is None
    assert compute.budget_remaining(Tally(), 99.0) is None
    assert compute.passing(Tally(), 99.0)


def test_a_page_worthy_burn_spends_two_percent_of_the_month_in_an_hour() -> None:
    # The SRE workbook's page threshold: 14.4 × over 1 h spends 14.4 / 720 = 2 % of 30 days.
    t = Tally(856, 1000)  # 14.4 % bad against a 99 % objective (1 % allowed)
    burn = compute.burn_rate(t, 99.0)
    assert burn == pytest.approx(14.4)
    assert burn is not None and burn * 3600 / (30 * 86400) == pytest.approx(0.02)
    # At 14.4× a full budget lasts 30 d / 14.4 = 50 h.
    assert compute.hours_left(14.4, 100.0, 30 * 86400) == pytest.approx(50.0)
    assert compute.hours_left(0.0, 100.0, 30 * 86400) is None


def test_latency_counts_the_bins_up_to_the_thresholds_bin() -> None:
    values = [100.0, 900.0, 1999.0, 2000.0, 2030.0, 2100.0, 5000.0, 0.0]
    bins = [(*sketch.bin_of(v), 1) for v in values]
    t = compute.latency_tally(bins, 2000.0)
    # 2030 ms shares 2000 ms's bin (bins are a factor 1.0202 wide): it counts as within;
    # 2100 and 5000 do not. The 0 lands in the zero bin: within.
    assert sketch.bin_of(2030.0) == sketch.bin_of(2000.0)
    assert sketch.bin_of(2100.0) != sketch.bin_of(2000.0)
    assert (t.good, t.total) == (6.0, 8.0)
    assert compute.compliance(t) == pytest.approx(75.0)


def test_latency_never_counts_an_event_at_or_under_the_threshold_as_bad() -> None:
    for threshold in (1.0, 37.5, 250.0, 2000.0, 123_456.0):
        below = [threshold * f for f in (0.5, 0.9, 0.99, 0.999, 1.0)]
        t = compute.latency_tally([(*sketch.bin_of(v), 3) for v in below], threshold)
        assert t.good == t.total == 15
        # and nothing more than one bin width (2.02 %) above it counts as good
        above = compute.latency_tally([(*sketch.bin_of(threshold * 1.021), 1)], threshold)
        assert above.good == 0


def test_throughput_counts_whole_cycles_since_the_first_report() -> None:
    # 1-minute cycles, at least 10 events. Reports start at 600 s.
    sums = {600: 12.0, 660: 9.0, 720: 10.0, 840: 30.0}  # 780 reported nothing
    # [600, 900): cycles 600, 660, 720, 780, 840 → good 600, 720, 840.
    t = compute.cycles_tally(sums, 600, 900, 60, 10, since=600)
    assert (t.good, t.total) == (3.0, 5.0)
    # A window counts the cycles that ended in it: ending mid-cycle leaves the unfinished
    # one out, and 600–660 ended after 610.
    t = compute.cycles_tally(sums, 610, 890, 60, 10, since=600)
    assert (t.good, t.total) == (2.0, 4.0)  # 600 (12), 660 (9), 720 (10), 780 (none)
    # A window shorter than a cycle counts the last cycle that ended.
    assert compute.cycles_tally(sums, 890, 900, 60, 10, since=600) == Tally(1.0, 1.0)  # 840
    assert compute.cycles_tally(sums, 841, 845, 60, 10, since=600) == Tally(0.0, 1.0)  # 780
    # but not in a history's buckets, which must not count a cycle twice
    assert compute.cycles_tally(sums, 841, 845, 60, 10, since=600, last_cycle=False) == Tally()
    # Before the first report nothing counts.
    t = compute.cycles_tally(sums, 0, 720, 60, 10, since=600)
    assert (t.good, t.total) == (1.0, 2.0)


def test_success_rate_counts_runs_by_their_end() -> None:
    finished = [(100.0, True), (200.0, False), (300.0, True), (400.0, True)]
    t = compute.runs_tally(finished, 150, 400)  # 200 and 300; 400 is the end, excluded
    assert (t.good, t.total) == (1.0, 2.0)
    assert compute.runs_tally(finished, 0, 1000) == Tally(3.0, 4.0)


def test_freshness_is_the_share_of_time_the_last_success_was_young_enough() -> None:
    # max_age 100 s; successes end at 0 and 250; window [50, 450), first run at 0.
    # Fresh: [50, 100) from the first, [250, 350) from the second → 150 of 400 s.
    t = compute.fresh_tally([0.0, 250.0], 100.0, 50.0, 450.0, since=0.0)
    assert (t.good, t.total) == (150.0, 400.0)
    assert compute.compliance(t) == pytest.approx(37.5)
    # Overlapping freshness counts once: successes at 0, 50, 80 with max_age 100 → [0, 180).
    t = compute.fresh_tally([0.0, 50.0, 80.0], 100.0, 0.0, 200.0, since=0.0)
    assert (t.good, t.total) == (180.0, 200.0)
    # Time before the first run does not count; a pipeline that never ran counts nothing.
    t = compute.fresh_tally([300.0], 100.0, 0.0, 400.0, since=200.0)
    assert (t.good, t.total) == (100.0, 200.0)
    assert compute.fresh_tally([], 100.0, 0.0, 400.0, since=None) == Tally()


def test_figures_judge_pass_fail_over_the_slos_window() -> None:
    tallies = {
        "5m": Tally(80, 100),
        "30m": Tally(900, 1000),
        "1h": Tally(1900, 2000),
        "6h": Tally(11_900, 12_000),
        "24h": Tally(47_900, 48_000),
        "7d": Tally(335_000, 336_000),
        "30d": Tally(1_439_000, 1_440_000),
    }
    fig = compute.figures(tallies, 99.0, "1h")
    assert fig.sli == pytest.approx(95.0)
    assert not fig.passing
    assert fig.burn_rates["5m"] == pytest.approx(20.0)
    assert fig.burn_rates["1h"] == pytest.approx(5.0)
    assert fig.compliance["30d"] == pytest.approx(100 * 1_439_000 / 1_440_000)
    # 1,000 bad of 14,400 allowed over 30 d: 1 − 1000/14400 of the budget left.
    assert fig.budget_remaining == pytest.approx(100 * (1 - 1000 / 14_400))
    assert compute.figures(tallies, 99.0, "30d").passing
