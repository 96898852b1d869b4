"""How numbers, times and durations read on the pages (Jinja filters)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

EMPTY = ""


def thousands(value: float | None, digits: int = 0) -> str:
    """1234567 → ``1,234,567``; None → empty."""
    if value is None:
        return EMPTY
    if isinstance(value, float) and not math.isfinite(value):
        return EMPTY
    return f"{value:,.{digits}f}"


def hms(seconds: float | None) -> str:
    """Seconds as HH:MM:SS (hours go past 24 rather than into days)."""
    if seconds is None:
        return EMPTY
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def utc(value: datetime | None, seconds: bool = True) -> str:
    """A timestamp in UTC, ``2026-11-23 01:00:00``."""
    if value is None:
        return EMPTY
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso(value: datetime | None) -> str:
    return EMPTY if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 → ``12.3 %``; None → ``–``."""
    if value is None:
        return "–"
    return f"{value * 100:.{digits}f} %"


def ago(then: datetime | None, now: datetime) -> str:
    """How long ago, in the largest unit that reads well: ``12 s``, ``5 min``, ``3 h``."""
    if then is None:
        return "never"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def span(seconds: float | None) -> str:
    """A threshold in the unit that reads well: ``45 min``, ``4 h``, ``1.5 h``, ``2 d``."""
    if seconds is None:
        return EMPTY
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    if seconds < 2 * 86400 or seconds % 86400:
        return f"{round(seconds / 3600, 1):g} h"
    return f"{seconds / 86400:g} d"


def readable(value: Any) -> str:
    """A custom stat's value for people: numbers with separators, lists joined."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return thousands(value)
    if isinstance(value, float):
        return thousands(value, 0 if value.is_integer() else 2)
    if value is None:
        return "–"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(readable(v) for v in value)
    return str(value)


def flat_stats(stats: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Custom stats as (name, readable value) rows; nested objects become dotted names
    (``stages.extract``) so nothing hides inside a JSON blob."""
    rows: list[tuple[str, str]] = []
    for key in sorted(stats):
        value = stats[key]
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(flat_stats(value, f"{name}."))
        elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    rows.extend(flat_stats(item, f"{name}[{i}]."))
                else:
                    rows.append((f"{name}[{i}]", readable(item)))
        else:
            rows.append((name, readable(value)))
    return rows


FILTERS = {
    "thousands": thousands,
    "hms": hms,
    "span": span,
    "utc": utc,
    "iso": iso,
    "percent": percent,
    "readable": readable,
    "flat_stats": flat_stats,
    "path": lambda value: quote(str(value), safe=""),
}
