"""How numbers, durations and times read in an incident's summary and timeline."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def count(value: float | None) -> str:
    """Events: ``2,350``; ``–`` when unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{round(value):,}"


def rate(value: float | None) -> str:
    """Events per second: ``140/s``, ``0.5/s``."""
    if value is None or not math.isfinite(value):
        return "–"
    if value >= 10 or value == 0:
        return f"{round(value):,}/s"
    return f"{value:.1f}/s"


def ms(value: float | None) -> str:
    """A latency: ``850 ms``, ``8.2 s``, ``3.5 min``."""
    if value is None or not math.isfinite(value):
        return "–"
    if value < 1000:
        return f"{round(value)} ms"
    if value < 120_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def duration(seconds: float) -> str:
    """How long: ``45 s``, ``2 min``, ``1 h 5 min``, ``2 d 3 h``."""
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def times(factor: float) -> str:
    """A ratio: ``2.4×``; close to 1, ``1.03×`` (so that just above does not read 1.0×)."""
    return f"{factor:.2f}×" if factor < 1.095 else f"{factor:.1f}×"


def pct(value: float | None, digits: int = 2) -> str:
    """A percentage given in percent: ``99.25 %``."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return f"{text} %"


def clock(at: datetime) -> str:
    """``2026-11-23 12:03 UTC``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
