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
import pyarrow as pa
import pyarrow.compute as pc
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
# Seconds and microseconds since 1970 of 10000-01-01: later times do not fit a timestamp.
_MAX_SECONDS: Final = 253_402_300_800
_MAX_MICROS: Final = _MAX_SECONDS * 1_000_000
# Doubles are whole numbers exactly up to here; beyond it a product may round.
_EXACT_DOUBLE: Final = float(2**53)
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
    series_index: pa.Array = field(default_factory=lambda: pa.array([], pa.int32()))
    times_us: pa.Array = field(default_factory=lambda: pa.array([], pa.int64()))
    values: pa.Array = field(default_factory=lambda: pa.array([], pa.float64()))

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


def _column(raw: list[Any]) -> pa.Array | None:
    """A JSON list of numbers as an int64 or double Arrow array; None when it holds anything
    else (text, booleans, nulls, integers beyond 64 bits)."""
    try:
        column = pa.array(raw)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        return None
    if column.null_count or not (
        pa.types.is_int64(column.type) or pa.types.is_float64(column.type)
    ):
        return None
    return column


def _fast_times(raw: list[Any]) -> pa.Array | None:
    """Times given as numbers (seconds), checked and converted for the whole column at once
    exactly as :func:`to_micros` does one by one; None when any of them needs the slow path
    (text, a value out of range: the per-item validation then names it)."""
    column = _column(raw)
    if column is None:
        return None
    if pa.types.is_int64(column.type):
        lo, hi = pc.min_max(column).values()
        if lo.as_py() < 0 or hi.as_py() >= _MAX_SECONDS:
            return None
        return pc.multiply(column, 1_000_000)
    micros = pc.round(pc.multiply(column, 1_000_000.0), round_mode="half_to_even")
    lo, hi = pc.min_max(micros).values()
    # min_max skips NaN: a NaN among the times makes the column fall back as well.
    if pc.any(pc.is_nan(micros)).as_py() or not 0 <= lo.as_py() <= hi.as_py() < _EXACT_DOUBLE:
        return None
    return pc.cast(micros, pa.int64())


def _fast_values(raw: list[Any]) -> pa.Array | None:
    """Values as doubles, checked like :func:`to_value`; None to take the slow path."""
    column = _column(raw)
    if column is None:
        return None
    values = pc.cast(column, pa.float64(), safe=False)
    if pc.any(pc.is_nan(values)).as_py():
        return None
    top = pc.max(pc.abs(values)).as_py()
    if top is None or top > MAX_MAGNITUDE:  # inf is over the limit too
        return None
    return values


def _fast_columns(items: list[Any]) -> dict[int, tuple[pa.Array, pa.Array]]:
    """Series in columns whose times and values are plain numbers within their rules,
    converted column-wise (the bulk of a large request); the per-element validation
    is left for everything else, so that errors still name the element."""
    out: dict[int, tuple[pa.Array, pa.Array]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        times, values = item.get("times"), item.get("values")
        if not (isinstance(times, list) and isinstance(values, list)):
            continue
        if not times or len(times) != len(values):
            continue
        t = _fast_times(times)
        v = _fast_values(values) if t is not None else None
        if t is not None and v is not None:
            out[i] = (t, v)
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
    columns = _fast_columns(items)
    # The columns already converted are not validated again element by element.
    shallow = [
        {**item, "times": [], "values": []} if i in columns else item
        for i, item in enumerate(items)
    ]
    try:
        parsed = _ITEMS.validate_python(shallow)
    except ValidationError as exc:
        raise InvalidInput(_problems(exc, locate)) from None
    if not parsed:
        raise InvalidInput([FieldProblem("points", "must contain at least one point")])
    batch = PointBatch()
    known: dict[SeriesKey, int] = {}
    problems: list[FieldProblem] = []
    index_chunks: list[pa.Array] = []
    time_chunks: list[pa.Array] = []
    value_chunks: list[pa.Array] = []
    # Single points and series validated one by one, gathered until the next column chunk.
    loose: tuple[list[int], list[int], list[float]] = ([], [], [])

    def flush() -> None:
        if loose[0]:
            index_chunks.append(pa.array(loose[0], pa.int32()))
            time_chunks.append(pa.array(loose[1], pa.int64()))
            value_chunks.append(pa.array(loose[2], pa.float64()))
            for part in loose:
                part.clear()

    for i, item in enumerate(parsed):
        key = SeriesKey(item.project, item.name, tuple(sorted(item.tags.items())))
        index = known.get(key)
        if index is None:
            index = known[key] = len(batch.series)
            batch.series.append(key)
            batch.where.append(f"{locate(i)}.tags")
        if isinstance(item, PointIn):
            loose[0].append(index)
            loose[1].append(item.time)
            loose[2].append(item.value)
            continue
        if i in columns:
            flush()
            times, values = columns[i]
            index_chunks.append(pa.repeat(pa.scalar(index, pa.int32()), len(values)))
            time_chunks.append(times)
            value_chunks.append(values)
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
        loose[0].extend([index] * len(item.values))
        loose[1].extend(item.times)
        loose[2].extend(item.values)
    if problems:
        raise InvalidInput(problems)
    flush()
    if not value_chunks:
        raise InvalidInput([FieldProblem("points", "must contain at least one point")])
    batch.series_index = pa.concat_arrays(index_chunks)
    batch.times_us = pa.concat_arrays(time_chunks)
    batch.values = pa.concat_arrays(value_chunks)
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
