"""Metric points at the edge: a JSON body in, a validated :class:`PointBatch` out.

A body is one item or a list of items. An item is a point
``{"name", "time", "value", "tags"?, "project"?}`` or, for volume, a series in columns
``{"name", "tags"?, "project"?, "times": [...], "values": [...]}``. A time is an ISO-8601
timestamp with a zone offset or a number of seconds since 1970-01-01 UTC.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    TypeAdapter,
    ValidationError,
)

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.timeseries.sketch import MAX_MAGNITUDE

RESERVED_PREFIX: Final = "runs."  # run-derived series (timeseries/runs.py)
MAX_TAGS: Final = 32
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Microseconds since 1970 of 10000-01-01: later times do not fit a timestamp.
_MAX_MICROS: Final = 253_402_300_800 * 1_000_000
_TIME_RULE: Final = (
    "must be an ISO-8601 timestamp with a zone offset or a number of seconds since 1970-01-01 UTC"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 200 characters: a letter or _ first, then letters, digits, _ . : -"
        )
    if value.startswith(RESERVED_PREFIX):
        raise ValueError(f"names starting with {RESERVED_PREFIX!r} are reserved for run metrics")
    return value


def check_tags(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per point")
    for key, tag in value.items():
        if not _TAG_KEY.fullmatch(key):
            raise ValueError(
                f"tag key {key[:100]!r} must be 1 to 100 characters: a letter or _ first, "
                "then letters, digits, _ . -"
            )
        if not 1 <= len(tag) <= 200 or _CONTROL.search(tag):
            raise ValueError(
                f"tag {key!r} must have a value of 1 to 200 characters without control characters"
            )
    return value


def check_project(value: str) -> str:
    if not 1 <= len(value) <= 200 or _CONTROL.search(value):
        raise ValueError("must be 1 to 200 characters without control characters")
    return value


def to_micros(value: Any) -> int:
    """A time (ISO-8601 text with a zone offset, or seconds since 1970) as microseconds."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(_TIME_RULE) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("must include a time zone offset (e.g. 2026-01-31T02:00:00Z)")
        delta = parsed - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        micros = round(value * 1_000_000)
    else:
        raise ValueError(_TIME_RULE)
    if not 0 <= micros < _MAX_MICROS:
        raise ValueError("must be between 1970-01-01 and 9999-12-31")
    return micros


def to_value(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and abs(number) <= MAX_MAGNITUDE:
            return number
    raise ValueError(f"must be a finite number of magnitude at most {MAX_MAGNITUDE:.4g}")


MetricName = Annotated[str, AfterValidator(check_name)]
Tags = Annotated[dict[str, str], AfterValidator(check_tags)]
Project = Annotated[str, AfterValidator(check_project)]
Value = Annotated[float, PlainValidator(to_value)]
Micros = Annotated[int, PlainValidator(to_micros)]


class PointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: MetricName
    time: Micros
    value: Value
    tags: Tags = Field(default_factory=dict)
    project: Project = "default"


class SeriesIn(BaseModel):
    """One series in columns: ``times[i]`` goes with ``values[i]``."""

    model_config = ConfigDict(extra="forbid")
    name: MetricName
    times: list[Micros]
    values: list[Value]
    tags: Tags = Field(default_factory=dict)
    project: Project = "default"


def _shape(item: Any) -> str:
    return "series" if isinstance(item, dict) and "times" in item else "point"


Item = Annotated[
    Annotated[PointIn, Tag("point")] | Annotated[SeriesIn, Tag("series")], Discriminator(_shape)
]
_ITEMS = TypeAdapter(list[Item])
# Parts of pydantic's error locations that name a branch of a union, not a field.
_BRANCHES = frozenset({"point", "series"})


@dataclass(frozen=True, slots=True)
class SeriesKey:
    project: str
    name: str
    tags: tuple[tuple[str, str], ...]  # sorted by key

    @property
    def series_id(self) -> int:
        """A stable 63-bit id of (project, name, tags): the same on every replica."""
        digest = hashlib.blake2b(
            orjson.dumps([self.project, self.name, self.tags]), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big") >> 1

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(slots=True)
class PointBatch:
    """Validated points in columns: point ``i`` is ``(series[series_index[i]], times_us[i],
    values[i])``. ``where[j]`` names where series ``j`` first appears in the request."""

    series: list[SeriesKey] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    series_index: list[int] = field(default_factory=list)
    times_us: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


class BadPointsJson(ValueError):
    """The body is not JSON at all (HTTP 400)."""


class TooManyPoints(ValueError):
    """More points than one request may carry (HTTP 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"points: at most {limit} points per request, got {count}")


def _problems(error: ValidationError, locate: Callable[[int], str]) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for item in error.errors(include_url=False):
        parts = [p for p in item["loc"] if not (isinstance(p, str) and p in _BRANCHES)]
        where = locate(int(parts[0])) if parts else "body"
        for part in parts[1:]:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = str(item["msg"]).removeprefix("Value error, ")
        kind = item["type"]
        if kind == "extra_forbidden":
            msg = "is not a known field"
        elif kind == "missing":
            msg = "is required"
        elif kind == "list_type" and not parts:
            msg = "must be a point, a series in columns, or a list of them"
        elif kind in ("model_type", "dict_type", "model_attributes_type") and len(parts) == 1:
            msg = "must be a point or a series object"
        out.append(FieldProblem(where, msg, kind))
    return out


def parse_points(body: bytes, max_points: int) -> PointBatch:
    """Validate a JSON body of points and series (see the module's docstring).

    Raises InvalidInput naming every offending field (nothing of the request is written),
    BadPointsJson for a body that is not JSON, TooManyPoints over ``max_points``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPointsJson(f"body is not valid JSON: {exc}") from None
    single = not isinstance(data, list)
    items = [data] if single else data

    def locate(i: int) -> str:
        return "point" if single else f"points[{i}]"

    count = sum(
        len(item["values"]) if isinstance(item.get("values"), list) else 1
        for item in items
        if isinstance(item, dict)
    )
    if count > max_points:
        raise TooManyPoints(count, max_points)
    try:
        parsed = _ITEMS.validate_python(items)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc, locate)) from None
    if not parsed:
        raise InvalidInput([FieldProblem("points", "must contain at least one point")])
    batch = PointBatch()
    known: dict[SeriesKey, int] = {}
    problems: list[FieldProblem] = []
    for i, item in enumerate(parsed):
        key = SeriesKey(item.project, item.name, tuple(sorted(item.tags.items())))
        index = known.get(key)
        if index is None:
            index = known[key] = len(batch.series)
            batch.series.append(key)
            batch.where.append(f"{locate(i)}.tags")
        if isinstance(item, PointIn):
            batch.series_index.append(index)
            batch.times_us.append(item.time)
            batch.values.append(item.value)
            continue
        if len(item.times) != len(item.values):
            problems.append(
                FieldProblem(
                    f"{locate(i)}.values",
                    f"must have one value per time: {len(item.times)} times, "
                    f"{len(item.values)} values",
                )
            )
            continue
        batch.series_index.extend([index] * len(item.values))
        batch.times_us.extend(item.times)
        batch.values.extend(item.values)
    if problems:
        raise InvalidInput(problems)
    if not batch.values:
        raise InvalidInput([FieldProblem("points", "must contain at least one point")])
    return batch


def series_problem(where: str, key: SeriesKey, count: int, limit: int) -> FieldProblem:
    return FieldProblem(
        where,
        f"metric {key.name!r} (project {key.project!r}) would have {count} tag combinations, "
        f"over the limit of {limit} per metric (FLOWDECK_METRIC_MAX_SERIES)",
        "too_many_series",
    )


def tags_json(tags: Mapping[str, str]) -> str:
    return orjson.dumps(dict(tags), option=orjson.OPT_SORT_KEYS).decode()
