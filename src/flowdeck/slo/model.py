"""What an SLO says, checked at the edge.

An SLO arrives as a plain mapping (the JSON body of ``PUT /api/v1/slos/{name}``) and leaves as
a frozen :class:`Slo`, or as :class:`InvalidInput` whose problems name the field and the rule
(``objective: must be a number from 50 up to (not including) 100``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from flowdeck.alerts.matchers import format_duration, parse_duration
from flowdeck.errors import FieldProblem, InvalidInput

KINDS: Final = ("latency", "throughput", "success_rate", "freshness")
# Windows of the compliance shown per SLO; "pass/fail now" is judged over one of them.
COMPLIANCE_WINDOWS: Final = ("1h", "24h", "7d", "30d")
DEFAULT_WINDOW: Final = "1h"
# The fields each kind takes besides the common ones.
KIND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "latency": ("threshold_ms",),
    "throughput": ("min_events", "cycle"),
    "success_rate": (),
    "freshness": ("max_age",),
}
COMMON_FIELDS: Final = frozenset(
    {"name", "project", "pipeline", "env", "kind", "objective", "window", "description"}
)
ALL_FIELDS: Final = COMMON_FIELDS | {f for fs in KIND_FIELDS.values() for f in fs}
# What GET answers that a PUT may send back unchanged.
SERVER_FIELDS: Final = frozenset({"created_at", "updated_at", "url", "state"})
DEFAULT_CYCLE: Final = 60.0
MAX_CYCLE: Final = 86_400.0
MAX_AGE_LIMIT: Final = 30 * 86_400.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_TEXT = re.compile(r"^[^\x00-\x1f]{1,200}$")


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    project: str
    pipeline: str
    kind: str
    objective: float  # percent of good events (or cycles, runs, time): 50 ≤ x < 100
    env: str | None = None  # runs of this env only (success_rate, freshness); None: every env
    threshold_ms: float | None = None  # latency
    min_events: int | None = None  # throughput: events a cycle needs to count as good
    cycle_s: float | None = None  # throughput
    max_age_s: float | None = None  # freshness
    window: str = DEFAULT_WINDOW  # compliance over this window decides pass/fail now
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def budget(self) -> float:
        """The share of events the objective allows to be bad (0.01 for 99 %)."""
        return 1 - self.objective / 100

    def spec(self) -> dict[str, Any]:
        """The definition as the API shows it and the store keeps it (durations as text)."""
        out: dict[str, Any] = {
            "name": self.name,
            "project": self.project,
            "pipeline": self.pipeline,
            "env": self.env,
            "kind": self.kind,
            "objective": self.objective,
            "window": self.window,
            "description": self.description,
        }
        if self.kind == "latency":
            out["threshold_ms"] = self.threshold_ms
        elif self.kind == "throughput":
            out["min_events"] = self.min_events
            out["cycle"] = format_duration(self.cycle_s or DEFAULT_CYCLE)
        elif self.kind == "freshness":
            out["max_age"] = format_duration(self.max_age_s or 0)
        return out

    def describe(self) -> str:
        """The objective in words: "95 % of events within 2,000 ms"."""
        goal = f"{self.objective:g} %"
        if self.kind == "latency":
            return f"{goal} of events end to end within {self.threshold_ms:,g} ms"
        if self.kind == "throughput":
            cycle = format_duration(self.cycle_s or DEFAULT_CYCLE)
            return f"{goal} of {cycle} cycles with at least {self.min_events:,} events"
        if self.kind == "success_rate":
            return f"{goal} of finished runs succeed"
        age = format_duration(self.max_age_s or 0)
        return f"{goal} of the time the last success is younger than {age}"


class _Checker:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[FieldProblem] = []

    def fail(self, name: str, msg: str) -> None:
        self.problems.append(FieldProblem(name, msg))

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> Any:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return default
        if not isinstance(value, str) or not _TEXT.match(value) or not value.strip():
            self.fail(name, "must be a non-empty string of at most 200 characters")
            return default
        return value

    def number(self, name: str, *, whole: bool = False) -> Any:
        raw = self.data.get(name)
        ok = isinstance(raw, int) if whole else isinstance(raw, int | float)
        if isinstance(raw, bool) or not ok or (isinstance(raw, float) and not math.isfinite(raw)):
            self.fail(name, "must be a whole number" if whole else "must be a number")
            return None
        return raw

    def duration(self, name: str, default: float | None) -> float | None:
        raw = self.data.get(name)
        if raw is None:
            return default
        try:
            return parse_duration(raw)
        except ValueError as exc:
            self.fail(name, str(exc))
            return None


def parse_slo(data: Any, name: str | None = None) -> Slo:
    """An SLO from its mapping, or InvalidInput naming each bad field. ``name`` is the one in
    the path (a body may repeat it, not change it)."""
    if not isinstance(data, Mapping):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    data = {k: v for k, v in data.items() if k not in SERVER_FIELDS}
    c = _Checker(data)
    slo_name = data.get("name", name)
    if name is not None and slo_name != name:
        c.fail("name", f"must be {name!r} (the name in the path)")
    elif not isinstance(slo_name, str) or not _NAME.match(slo_name):
        c.fail(
            "name",
            "must start with a letter or digit and use only letters, digits, '_', '.' or '-' "
            "(at most 100 characters)",
        )
    kind = data.get("kind")
    if kind not in KINDS:
        c.fail("kind", f"must be one of {', '.join(KINDS)}")
        raise InvalidInput(c.problems)
    mine = COMMON_FIELDS | set(KIND_FIELDS[kind])
    for key in data:
        if key not in mine:
            if key in ALL_FIELDS:
                c.fail(str(key), f"is not a field of {kind} SLOs")
            else:
                c.fail(str(key), "is not a known field")
    project = c.text("project", default="default")
    pipeline = c.text("pipeline", required=True)
    env = c.text("env")
    objective = c.number("objective") if "objective" in data else None
    if "objective" not in data:
        c.fail("objective", "is required (a percentage from 50 up to, not including, 100)")
    elif objective is not None and not 50 <= objective < 100:
        c.fail("objective", "must be a number from 50 up to (not including) 100, in percent")
    window = data.get("window", DEFAULT_WINDOW)
    if window not in COMPLIANCE_WINDOWS:
        c.fail("window", f"must be one of {', '.join(COMPLIANCE_WINDOWS)}")
    description = data.get("description") or ""
    if not isinstance(description, str) or len(description) > 2_000:
        c.fail("description", "must be text of at most 2,000 characters")
        description = ""
    threshold_ms = min_events = cycle_s = max_age_s = None
    if kind == "latency":
        if "threshold_ms" not in data:
            c.fail("threshold_ms", "is required for latency SLOs (milliseconds, above 0)")
        else:
            threshold_ms = c.number("threshold_ms")
            if threshold_ms is not None and not 0 < threshold_ms <= 1e9:
                c.fail("threshold_ms", "must be above 0 and at most 1,000,000,000 ms")
    elif kind == "throughput":
        if "min_events" not in data:
            c.fail("min_events", "is required for throughput SLOs (events per cycle, 1 or more)")
        else:
            min_events = c.number("min_events", whole=True)
            if min_events is not None and not 1 <= min_events <= 1e12:
                c.fail("min_events", "must be a whole number from 1 to 1,000,000,000,000")
        cycle_s = c.duration("cycle", DEFAULT_CYCLE)
        if cycle_s is not None and (
            cycle_s < 60 or cycle_s > MAX_CYCLE or cycle_s % 60 or MAX_CYCLE % cycle_s
        ):
            c.fail(
                "cycle",
                "must be whole minutes that divide a day, from 1m to 1d (1m, 5m, 15m, 1h, 1d…)",
            )
    elif kind == "freshness":
        if "max_age" not in data:
            c.fail("max_age", "is required for freshness SLOs (a duration such as 4h)")
        else:
            max_age_s = c.duration("max_age", None)
            if max_age_s is not None and not 60 <= max_age_s <= MAX_AGE_LIMIT:
                c.fail("max_age", "must be from 1m to 30d")
    if c.problems:
        raise InvalidInput(c.problems)
    return Slo(
        name=str(slo_name),
        project=str(project),
        pipeline=str(pipeline),
        kind=kind,
        objective=float(objective or 0),
        env=env,
        threshold_ms=None if threshold_ms is None else float(threshold_ms),
        min_events=min_events,
        cycle_s=cycle_s,
        max_age_s=max_age_s,
        window=str(window),
        description=description,
    )
