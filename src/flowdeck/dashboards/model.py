"""What a dashboard is: its time range, refresh and widgets on a 12-column grid, validated at
the edge. Every rule's message names the field (``widgets[2].grid.w``) and the rule."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.timeseries.query import Aggregation, Filter, MetricRef, TagName, check_filters
from flowdeck.timeseries.query import check_step as _check_step
from flowdeck.validation import field_problems

COLUMNS: Final = 12
MAX_ROWS: Final = 200  # grid rows (y + h)
MAX_WIDGETS: Final = 50

METRIC_TYPES: Final = ("line", "bar", "pie", "heatmap", "gauge", "stat", "table")
WIDGET_TYPES: Final = (*METRIC_TYPES, "alerts", "batch_status")
# Relative ranges the picker offers: name → length.
RANGES: Final[Mapping[str, timedelta]] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
REFRESH: Final[Mapping[str, int | None]] = {"1s": 1, "5s": 5, "30s": 30, "1m": 60, "off": None}
REDUCERS: Final = ("last", "mean", "total", "min", "max", "overall", "series")
FORMATS: Final = ("number", "percent", "duration")
LEVELS: Final = ("ok", "warn", "bad")
ALERT_STATES: Final = ("firing", "pending")
MAX_CUSTOM_RANGE: Final = timedelta(days=366)

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    return AfterValidator(check)


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            "must be 1 to 64 characters: a letter or digit first, then letters, digits, _ or -"
        )
    return value


def _check_widget_step(value: str) -> str:
    if value != "auto":
        _check_step(value)
    return value


Ident = Annotated[str, AfterValidator(_check_id)]
WidgetType = Annotated[str, _one_of(WIDGET_TYPES)]
Reducer = Annotated[str, _one_of(REDUCERS)]
Format = Annotated[str, _one_of(FORMATS)]
Level = Annotated[str, _one_of(LEVELS)]
RangeName = Annotated[str, _one_of(tuple(RANGES))]
RefreshName = Annotated[str, _one_of(tuple(REFRESH))]
AlertState = Annotated[str, _one_of(ALERT_STATES)]
WidgetStep = Annotated[str, AfterValidator(_check_widget_step)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeRange(Strict):
    """Either ``{"last": "24h"}`` (ending now) or ``{"start": ..., "end": ...}``."""

    last: RangeName | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    def problems(self, where: str) -> list[FieldProblem]:
        if self.last is not None:
            if self.start is not None or self.end is not None:
                return [FieldProblem(where, "give either last or start and end, not both")]
            return []
        if self.start is None or self.end is None:
            return [
                FieldProblem(where, "give last (one of 1h, 6h, 24h, 7d, 30d, 90d) or start and end")
            ]
        if self.end <= self.start:
            return [FieldProblem(f"{where}.end", "must be after start")]
        if self.end - self.start > MAX_CUSTOM_RANGE:
            return [FieldProblem(f"{where}.end", "a custom range may span at most 366 days")]
        return []

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        if self.last is not None:
            return now - RANGES[self.last], now
        assert self.start is not None and self.end is not None
        return self.start, self.end


class GridPos(Strict):
    """Where a widget sits: column ``x`` (0–11) and row ``y`` from the top left, ``w``
    columns wide and ``h`` rows high (a row is 70 px on screen)."""

    x: int = Field(ge=0, le=COLUMNS - 1)
    y: int = Field(ge=0, le=MAX_ROWS - 1)
    w: int = Field(ge=1, le=COLUMNS)
    h: int = Field(ge=1, le=24)

    @model_validator(mode="after")
    def _inside(self) -> GridPos:
        if self.x + self.w > COLUMNS:
            raise ValueError(f"x + w must be at most {COLUMNS} (the grid's columns)")
        return self


class WidgetQuery(Strict):
    """A metric query as POST /api/v1/metrics/query takes it, without the range (the
    dashboard's) and with ``step`` ``auto`` (about 120 buckets over the range) allowed."""

    metric: MetricRef | None = None
    definition: str | None = Field(default=None, min_length=1, max_length=200)
    aggregation: Aggregation | None = None
    group_by: list[TagName] | None = Field(default=None, max_length=8)
    filters: list[Filter] = Field(default_factory=list, max_length=32)
    project: str | None = Field(default=None, min_length=1, max_length=200)
    step: WidgetStep = "auto"

    @model_validator(mode="after")
    def _source(self) -> WidgetQuery:
        if (self.metric is None) == (self.definition is None):
            raise ValueError("give either metric or definition")
        return self


class Threshold(Strict):
    value: float
    level: Level


class WidgetOptions(Strict):
    """Display options; each type reads the ones that apply to it (see docs/dashboards.md)."""

    format: Format = "number"
    reduce: Reducer = "last"  # pie, gauge, stat, table: one value per series
    stack: bool = False  # line, bar
    donut: bool = False  # pie
    min: float | None = None  # gauge
    max: float | None = None  # gauge
    # stat, gauge: the level below the first threshold is ``base``; each threshold
    # (ascending) sets the level from its value up.
    base: Level = "ok"
    thresholds: list[Threshold] = Field(default_factory=list, max_length=10)
    limit: int = Field(default=20, ge=1, le=500)  # table, alerts: rows shown
    states: list[AlertState] = Field(default_factory=lambda: list(ALERT_STATES), min_length=1)
    env: str | None = Field(default=None, min_length=1, max_length=200)  # batch_status
    project: str | None = Field(default=None, min_length=1, max_length=200)  # batch_status

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, value: list[Threshold]) -> list[Threshold]:
        if any(b.value <= a.value for a, b in itertools.pairwise(value)):
            raise ValueError("must be in ascending order of value")
        return value


class Widget(Strict):
    id: Ident
    type: WidgetType
    title: str = Field(default="", max_length=200)
    grid: GridPos
    query: WidgetQuery | None = None
    options: WidgetOptions = Field(default_factory=WidgetOptions)

    def problems(self, where: str) -> list[FieldProblem]:
        """The rules across this widget's fields."""
        out = []
        if self.type in METRIC_TYPES and self.query is None:
            out.append(FieldProblem(f"{where}.query", f"is required for a {self.type} widget"))
        if self.type not in METRIC_TYPES and self.query is not None:
            out.append(FieldProblem(f"{where}.query", f"a {self.type} widget takes no query"))
        if self.query is not None:
            out += check_filters(self.query.filters, f"{where}.query.filters")
        opts = self.options
        if opts.min is not None and opts.max is not None and opts.max <= opts.min:
            out.append(FieldProblem(f"{where}.options.max", "must be greater than options.min"))
        return out


class DashboardIn(Strict):
    """What a client sends to create or replace a dashboard."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2_000)
    time_range: TimeRange = Field(default_factory=lambda: TimeRange(last="24h"))
    refresh: RefreshName = "30s"
    widgets: list[Widget] = Field(default_factory=list, max_length=MAX_WIDGETS)
    # PUT only: the version the client edited; a newer stored one is a conflict (409).
    version: int | None = Field(default=None, ge=1)

    @field_validator("title")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    def spec(self) -> dict[str, Any]:
        """What the store keeps (everything but the version)."""
        return self.model_dump(mode="json", exclude={"version"}, exclude_none=False)


def check_widgets(widgets: list[Widget]) -> list[FieldProblem]:
    """The rules across fields and widgets: each widget's own, ids unique, no two
    overlapping."""
    problems: list[FieldProblem] = []
    seen: dict[str, int] = {}
    for i, w in enumerate(widgets):
        if w.id in seen:
            problems.append(
                FieldProblem(f"widgets[{i}].id", f"must be unique; widgets[{seen[w.id]}] has it")
            )
        seen.setdefault(w.id, i)
        problems += w.problems(f"widgets[{i}]")
    for i, a in enumerate(widgets):
        for j in range(i):
            b = widgets[j]
            if _overlap(a.grid, b.grid):
                problems.append(
                    FieldProblem(f"widgets[{i}].grid", f"overlaps widgets[{j}] ({b.id!r})")
                )
                break
    return problems


def _overlap(a: GridPos, b: GridPos) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def parse_dashboard(data: Any) -> DashboardIn:
    """A dashboard from parsed JSON; InvalidInput names every broken rule."""
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        board = DashboardIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc)) from None
    problems = board.time_range.problems("time_range") + check_widgets(board.widgets)
    if problems:
        raise InvalidInput(problems)
    return board


def parse_widget(data: Any, where: str = "widget") -> Widget:
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem(where, "must be a JSON object")])
    try:
        widget = Widget.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc, where)) from None
    if problems := widget.problems(where):
        raise InvalidInput(problems)
    return widget


def parse_time_range(data: Any, where: str = "time_range") -> TimeRange:
    try:
        time_range = TimeRange.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc, where)) from None
    if problems := time_range.problems(where):
        raise InvalidInput(problems)
    return time_range
