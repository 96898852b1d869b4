"""Query parameters that need more than a type: time windows and the like."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flowdeck.errors import FieldProblem, InvalidInput

_RELATIVE = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(name: str, value: str, now: datetime) -> datetime:
    """``24h``, ``7d``, ``30d`` (any whole number of m/h/d/w before now) or an ISO-8601
    time with a zone offset."""
    value = value.strip()
    if match := _RELATIVE.match(value):
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(
            [
                FieldProblem(
                    name,
                    "must be a duration before now such as 24h, 7d or 30d, or an ISO-8601 "
                    f"time with a zone offset such as 2026-01-31T00:00:00Z; got {value!r}",
                )
            ]
        )
    return parsed.astimezone(UTC)
