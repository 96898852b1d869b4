"""Label matchers (``retailer=acme``, ``team!=ops``, ``env=~prod|test``, ``pipeline!~tmp_.*``)
shared by rule selectors and silences, and durations written as ``90s``, ``5m``, ``4h``, ``1d``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

Op = Literal["=", "!=", "=~", "!~"]
OPS: Final[tuple[Op, ...]] = ("=~", "!~", "!=", "=")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatcherError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name):
            raise MatcherError(f"{self.name!r} is not a label name")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise MatcherError(f"{self.value!r} is not a regular expression: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        # Anchored, as in Prometheus: "prod" does not match "preprod".
        found = re.fullmatch(self.value, value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def out(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(raw: Any) -> Matcher:
    """``"retailer=acme"`` or ``{"name": "retailer", "op": "=", "value": "acme"}``."""
    if isinstance(raw, str):
        m = _MATCHER.match(raw)
        if not m:
            raise MatcherError(
                f"{raw!r} is not a matcher: write label=value, label!=value, "
                "label=~regex or label!~regex"
            )
        name, op, value = m.groups()
        return Matcher(name, op, value.strip("\"'"))  # type: ignore[arg-type]
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"name", "op", "value"}
        if unknown:
            raise MatcherError(f"unknown matcher key {sorted(unknown)[0]!r}")
        name, op, value = raw.get("name"), raw.get("op", "="), raw.get("value")
        if not isinstance(name, str) or not isinstance(value, str):
            raise MatcherError("a matcher needs a string name and a string value")
        if op not in OPS:
            raise MatcherError(f"op must be one of {', '.join(OPS)}, got {op!r}")
        return Matcher(name, op, value)
    raise MatcherError("a matcher is a string like 'retailer=acme' or an object")


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(raw: Any) -> float:
    """Seconds from ``90`` (seconds), ``"90s"``, ``"5m"``, ``"1h30m"``, ``"1d"``, ``"2w"``."""
    if isinstance(raw, bool):
        raise ValueError("must be a duration such as 30s, 5m, 4h or 1d")
    if isinstance(raw, int | float):
        if raw < 0 or raw != raw or raw == float("inf"):
            raise ValueError("must not be negative")
        return float(raw)
    if isinstance(raw, str):
        text = raw.strip().replace(" ", "")
        pos, total = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return total
    raise ValueError("must be a duration such as 30s, 5m, 4h or 1d")


def format_duration(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back: ``4h``, ``1h30m``, ``0s``."""
    if seconds <= 0:
        return "0s"
    if seconds != int(seconds):
        return f"{seconds:g}s"
    left, out = int(seconds), ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size:
            out += f"{left // size}{unit}"
            left %= size
    return out
