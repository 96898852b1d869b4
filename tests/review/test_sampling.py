"""Sampling by a hash of the event id: deterministic, nested across rates, within tolerance
of the rate over many ids, and the same in the SDK as on the server."""

from __future__ import annotations

import math
import uuid

import pytest

from flowdeck.review import sampling
from flowdeck.sdk import review as sdk_review


def test_same_event_same_decision_and_a_known_value() -> None:
    ids = [f"evt-{i}" for i in range(2000)]
    first = [sampling.is_sampled(i, 0.01) for i in ids]
    assert first == [sampling.is_sampled(i, 0.01) for i in ids]
    # Pinned, so that a change of the rule (which pipelines in other languages copy) shows.
    assert sampling.position("evt-0") == 0x768AFB481C178427 / 2**64  # sha256(b"evt-0")
    assert sampling.is_sampled("evt-0", 0.02) is False


@pytest.mark.parametrize("rate", [0.005, 0.01, 0.02])
def test_rate_within_tolerance_over_many_ids(rate: float) -> None:
    n = 200_000
    hits = sum(sampling.is_sampled(f"order-{i}", rate) for i in range(n))
    # Binomial: 4 standard deviations is a false alarm about once in 15,000 runs, and the
    # ids are fixed, so this either always passes or never does.
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(hits - n * rate) < 4 * sd, (hits, n * rate)
    random_ids = [uuid.UUID(int=i * 7919 + 17).hex for i in range(n)]
    hits = sum(sampling.is_sampled(i, rate) for i in random_ids)
    assert abs(hits - n * rate) < 4 * sd, (hits, n * rate)


def test_a_higher_rate_keeps_every_event_a_lower_one_keeps() -> None:
    ids = [f"e{i}" for i in range(50_000)]
    low = {i for i in ids if sampling.is_sampled(i, 0.005)}
    high = {i for i in ids if sampling.is_sampled(i, 0.02)}
    assert low and low < high


def test_sdk_and_server_agree() -> None:
    for i in range(20_000):
        event = f"ev-{i}-é"
        assert sdk_review.position(event) == sampling.position(event)
        for rate in (0.005, 0.01, 0.02):
            assert sdk_review.is_sampled(event, rate) == sampling.is_sampled(event, rate)
    assert (sdk_review.MIN_RATE, sdk_review.MAX_RATE, sdk_review.DEFAULT_RATE) == (
        sampling.MIN_RATE,
        sampling.MAX_RATE,
        sampling.DEFAULT_RATE,
    )


def test_check_rate() -> None:
    assert sampling.check_rate(0.005) == 0.005
    assert sampling.check_rate(0.02) == 0.02
    with pytest.raises(ValueError, match=r"must be a fraction between 0.005 and 0.02 .*; got 1"):
        sampling.check_rate(1)
