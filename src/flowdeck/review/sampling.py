"""Which events are reviewed: a deterministic hash of the event id against the pipeline's
rate, so the pipeline (the SDK) and the server always agree, and the same event is either
always or never sampled.

The rule, easy to reproduce in any language: take the SHA-256 of the event id's UTF-8 bytes,
read its first 8 bytes as an unsigned big-endian integer ``h``; the event is sampled when
``h / 2**64 < rate``. ``flowdeck.sdk.review`` carries a copy (the SDK never imports the
server); a test keeps the two equal.
"""

from __future__ import annotations

import hashlib
from typing import Final

MIN_RATE: Final = 0.005
MAX_RATE: Final = 0.02
DEFAULT_RATE: Final = 0.01
_SCALE: Final = float(2**64)


def position(event_id: str) -> float:
    """Where ``event_id`` falls in [0, 1): the same on every machine and in every run."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_sampled(event_id: str, rate: float) -> bool:
    """Whether ``event_id`` is in the review sample at ``rate`` (a fraction). A higher rate
    keeps every event a lower one keeps."""
    return position(event_id) < rate


def check_rate(rate: float) -> float:
    """``rate`` when it is a fraction within the allowed band; ValueError naming the rule."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(
            f"must be a fraction between {MIN_RATE} and {MAX_RATE} (0.5 % to 2 %); got {rate!r}"
        )
    return rate
