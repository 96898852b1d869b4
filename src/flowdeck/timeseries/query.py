"""The semantics of ``POST /api/v1/metrics/query``, as plain functions over a store.

The range is widened to whole steps: buckets are ``[k * step, (k + 1) * step)`` seconds since
1970 (UTC), so a 1d step gives calendar days in UTC. The coarsest rollup level whose width
divides the step answers the query, which is then exact: a bucket of the step is made of
whole rollup buckets. A step that no level divides (say 90 s) reads the raw points.
Percentiles come from the sketch (``sketch.py``) at every level, so they agree whichever
level answers; for reported metrics the database finds them (``sketch.quantile_sql``).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.store.metric_cells import CELL_LEVELS, WHOLE, numbered, tag_values
from flowdeck.store.metrics_sql import LEVELS, MetricsSql
from flowdeck.timeseries import sketch
from flowdeck.timeseries.batches import BATCH_METRICS, MAX_BATCHES, batch_tags
from flowdeck.timeseries.points import check_name
from flowdeck.timeseries.runs import RUN_METRICS, RUN_TAGS

Aggregation = Literal["avg", "sum", "count", "min", "max", "p50", "p95", "p99"]
PERCENTILES: Final[Mapping[str, float]] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
LEVEL_NAMES: Final[Mapping[int, str]] = {0: "raw", 60: "1m", 300: "5m", 3_600: "1h", 86_400: "1d"}
MAX_BUCKETS: Final = 10_000
_STEP = re.compile(r"([1-9][0-9]*)([smhd])")
_UNITS: Final = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def check_metric(value: str) -> str:
    """A metric name as points use it, or one of the run or batch metrics."""
    if value.startswith("runs."):
        if value not in RUN_METRICS:
            raise ValueError(f"unknown run metric; one of {', '.join(sorted(RUN_METRICS))}")
        return value
    if value.startswith("batches."):
        if value not in BATCH_METRICS:
            raise ValueError(f"unknown batch metric; one of {', '.join(sorted(BATCH_METRICS))}")
        return value
    return check_name(value)


def check_step(value: str | int) -> int:
    if isinstance(value, int):
        seconds = value
    else:
        match = _STEP.fullmatch(value.strip())
        if match is None:
            raise ValueError("must be seconds or a duration such as 30s, 5m, 1h, 1d")
        seconds = int(match[1]) * _UNITS[match[2]]
    if not 1 <= seconds <= 366 * 86_400:
        raise ValueError("must be between 1 second and 366 days")
    return seconds


MetricRef = Annotated[str, AfterValidator(check_metric)]
Step = Annotated[int | str, AfterValidator(check_step)]
TagName = Annotated[str, Field(min_length=1, max_length=100)]


class Filter(BaseModel):
    """Keep series whose tag ``tag`` equals ``value``, is one of ``value`` (a list, op
    ``in``) or matches the glob ``value`` (op ``glob``: ``*``, ``?``, ``[abc]``)."""

    model_config = ConfigDict(extra="forbid")
    tag: TagName
    op: Literal["equals", "in", "glob"] = "equals"
    value: str | list[str]

    def matches(self, tags: Mapping[str, str]) -> bool:
        got = tags.get(self.tag)
        if got is None:
            return False
        if self.op == "in":
            return got in self.value
        if self.op == "glob":
            assert isinstance(self.value, str)
            return fnmatchcase(got, self.value)
        return got == self.value


class MetricSpec(BaseModel):
    """What a named definition keeps: which numbers, how aggregated, which series."""

    model_config = ConfigDict(extra="forbid")
    metric: MetricRef
    aggregation: Aggregation = "avg"
    group_by: list[TagName] = Field(default_factory=list, max_length=8)
    filters: list[Filter] = Field(default_factory=list, max_length=32)
    project: str = Field(default="default", min_length=1, max_length=200)
    description: str = Field(default="", max_length=2_000)


class MetricQuery(BaseModel):
    """A query: ``metric`` or the name of a saved ``definition`` (whose aggregation and
    group_by the query may override and whose filters it may add to)."""

    model_config = ConfigDict(extra="forbid")
    metric: MetricRef | None = None
    definition: str | None = Field(default=None, min_length=1, max_length=200)
    start: AwareDatetime
    end: AwareDatetime
    step: Step = "1h"
    aggregation: Aggregation | None = None
    group_by: list[TagName] | None = Field(default=None, max_length=8)
    filters: list[Filter] = Field(default_factory=list, max_length=32)
    project: str | None = Field(default=None, min_length=1, max_length=200)


def check_filters(filters: Sequence[Filter], where: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, f in enumerate(filters):
        if f.op == "in" and (not isinstance(f.value, list) or not f.value):
            problems.append(FieldProblem(f"{where}[{i}].value", "op 'in' needs a list of values"))
        if f.op != "in" and not isinstance(f.value, str):
            problems.append(FieldProblem(f"{where}[{i}].value", f"op {f.op!r} needs one string"))
    return problems


@dataclass(frozen=True, slots=True)
class Plan:
    """A query made concrete: the spec to run and the buckets to answer."""

    spec: MetricSpec
    start: int  # seconds since 1970, a multiple of step
    end: int
    step: int
    level: int  # rollup width in seconds; 0 for the raw points

    @property
    def level_name(self) -> str:
        if self.spec.metric in RUN_METRICS:
            return "runs"
        if self.spec.metric in BATCH_METRICS:
            return "batches"
        return LEVEL_NAMES[self.level]


def _seconds(value: datetime) -> float:
    return (value - _EPOCH) / timedelta(seconds=1)


def choose_level(step: int) -> int:
    """The coarsest rollup level that answers ``step`` exactly (0: the raw points)."""
    return next((w for w in reversed(LEVELS) if step % w == 0), 0)


def plan_query(query: MetricQuery, saved: MetricSpec | None) -> Plan:
    """Check the query's rules across fields; raises InvalidInput naming the field."""
    problems: list[FieldProblem] = []
    if (query.metric is None) == (query.definition is None):
        problems.append(FieldProblem("metric", "give either metric or definition, not both"))
    if query.end <= query.start:
        problems.append(FieldProblem("end", "must be after start"))
    problems += check_filters(query.filters, "filters")
    step = check_step(query.step)
    if query.end > query.start:
        start = math.floor(_seconds(query.start) / step) * step
        end = math.ceil(_seconds(query.end) / step) * step
        if (end - start) // step > MAX_BUCKETS:
            problems.append(
                FieldProblem(
                    "step",
                    f"gives {(end - start) // step} buckets over the range; at most "
                    f"{MAX_BUCKETS}: choose a larger step or a shorter range",
                )
            )
    if problems:
        raise InvalidInput(problems)
    base = saved if saved is not None else MetricSpec(metric=query.metric or "")
    spec = base.model_copy(
        update={
            "aggregation": query.aggregation or base.aggregation,
            "group_by": base.group_by if query.group_by is None else query.group_by,
            "filters": [*base.filters, *query.filters],
            "project": query.project or base.project,
        }
    )
    return Plan(spec, start, end, step, choose_level(step))


@dataclass(slots=True)
class _Acc:
    n: int = 0
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    bins: list[sketch.Bin] = field(default_factory=list)

    def add(self, n: int, total: float, lo: float, hi: float) -> None:
        self.n += n
        self.total += total
        self.lo = min(self.lo, lo)
        self.hi = max(self.hi, hi)

    def value(self, aggregation: str) -> float | int | None:
        if aggregation == "count":
            return self.n
        if aggregation == "sum":
            return self.total
        if aggregation == "avg":
            return self.total / self.n if self.n else None
        if aggregation == "min":
            return self.lo
        if aggregation == "max":
            return self.hi
        return sketch.quantile(self.bins, PERCENTILES[aggregation])


Group = tuple[str | None, ...]


def _group(tags: Mapping[str, str], group_by: Sequence[str]) -> Group:
    return tuple(tags.get(t) for t in group_by)


def run_query(store: MetricsSql, plan: Plan) -> dict[str, Any]:
    """Answer a planned query: one series per group, its points ``[time, value]`` for the
    buckets that have data, oldest first."""
    spec = plan.spec
    accs: dict[Group, dict[int, _Acc]] = {}
    direct: dict[Group, list[list[Any]]] = {}
    percentile = spec.aggregation in PERCENTILES
    if spec.metric in RUN_METRICS:
        _run_series(store, plan, accs, percentile)
    elif spec.metric in BATCH_METRICS:
        _batch_series(store, plan, accs, percentile)
    else:
        series = store.list_metric_series(spec.project, spec.metric)
        chosen = {sid: t for sid, t in series.items() if all(f.matches(t) for f in spec.filters)}
        # The database adds up the series of each group: rows are groups × buckets.
        members, names = numbered(
            {sid: _group(t, spec.group_by) for sid, t in sorted(chosen.items())}
        )
        args = (members, plan.level, plan.start, plan.end, plan.step)
        # Rows come ordered by group and bucket: straight into the answer.
        if percentile and _cells_answer(plan):
            direct = _from_cells(store, plan, chosen)
        elif percentile:
            # The database finds the quantile: no sketch is read back.
            q = PERCENTILES[spec.aggregation]
            rows = store.group_quantiles(*args, q)
            direct = {names[g]: points for g, points in _points(rows, plan).items()}
        else:
            rows = store.group_values(*args, spec.aggregation)
            direct = {names[g]: points for g, points in _points(rows, plan).items()}
    out = []
    for group in sorted(direct or accs, key=lambda g: tuple((v is None, v or "") for v in g)):
        if direct:
            points = direct[group]
        else:
            buckets = accs[group]
            points = [
                [_iso(bucket), buckets[bucket].value(spec.aggregation)]
                for bucket in sorted(buckets)
            ]
        out.append({"tags": dict(zip(spec.group_by, group, strict=True)), "points": points})
    return {
        "metric": spec.metric,
        "project": spec.project,
        "aggregation": spec.aggregation,
        "group_by": spec.group_by,
        "start": _iso(plan.start),
        "end": _iso(plan.end),
        "step": plan.step,
        "level": plan.level_name,
        "series": out,
    }


def _cells_answer(plan: Plan) -> bool:
    """Whether the kept percentiles (``store/metric_cells.py``) answer a percentile query:
    at most one tag to group by, filters on that tag only (they keep or drop whole groups),
    and a step that is a level that keeps cells."""
    spec = plan.spec
    return (
        len(spec.group_by) <= 1
        and all(f.tag in spec.group_by for f in spec.filters)
        and plan.level in CELL_LEVELS
        and plan.step == plan.level
    )


def _from_cells(
    store: MetricsSql, plan: Plan, series: Mapping[int, Mapping[str, str]]
) -> dict[Group, list[list[Any]]]:
    spec = plan.spec
    tag = spec.group_by[0] if spec.group_by else WHOLE
    values = tag_values(series, tag)
    rows = store.cell_quantiles(
        spec.project,
        spec.metric,
        tag,
        values,
        plan.level,
        plan.start,
        plan.end,
        PERCENTILES[spec.aggregation],
    )
    kept = set(values.values())  # the groups the filters leave
    return {
        ((value or None),) if tag else (): points
        for value, points in _points(rows, plan).items()
        if value in kept
    }


def _points(rows: Sequence[Sequence[Any]], plan: Plan) -> dict[Any, list[list[Any]]]:
    """Rows (group, bucket start in seconds, value), ordered by group and bucket, as the
    answer's points per group: ``[time, value]`` oldest first."""
    times = {b: _iso(b) for b in range(plan.start, plan.end, plan.step)}
    out: dict[Any, list[list[Any]]] = {}
    for group, members in itertools.groupby(rows, key=operator.itemgetter(0)):
        out[group] = [[times[r[1]], r[2]] for r in members]
    return out


def _run_series(
    store: MetricsSql, plan: Plan, accs: dict[Group, dict[int, _Acc]], percentile: bool
) -> None:
    spec = plan.spec
    rows = store.run_values(
        spec.project,
        RUN_METRICS[spec.metric],
        _EPOCH + timedelta(seconds=plan.start),
        _EPOCH + timedelta(seconds=plan.end),
    )
    for at, pipeline, env, status, labels, value in rows:
        tags = {k: str(v) for k, v in labels.items()} | dict(
            zip(RUN_TAGS, (pipeline, env, status), strict=True)
        )
        if not all(f.matches(tags) for f in spec.filters):
            continue
        bucket = math.floor(_seconds(at) / plan.step) * plan.step
        acc = accs.setdefault(_group(tags, spec.group_by), {}).setdefault(bucket, _Acc())
        acc.add(1, value, value, value)
        if percentile:
            acc.bins.append((*sketch.bin_of(value), 1))


def _batch_series(
    store: MetricsSql, plan: Plan, accs: dict[Group, dict[int, _Acc]], percentile: bool
) -> None:
    from flowdeck.store.base import BatchQuery, Store

    assert isinstance(store, Store)
    spec = plan.spec
    value_of = BATCH_METRICS[spec.metric]
    rows = store.list_batches(
        BatchQuery(
            since=_EPOCH + timedelta(seconds=plan.start),
            until=_EPOCH + timedelta(seconds=plan.end),
            project=spec.project,
            limit=MAX_BATCHES,
        )
    )
    for row in rows:
        value = value_of(row)
        if value is None:
            continue
        at = row.sort_at
        tags = batch_tags(row)
        if not all(f.matches(tags) for f in spec.filters):
            continue
        bucket = math.floor(_seconds(at) / plan.step) * plan.step
        acc = accs.setdefault(_group(tags, spec.group_by), {}).setdefault(bucket, _Acc())
        acc.add(1, value, value, value)
        if percentile:
            acc.bins.append((*sketch.bin_of(value), 1))


@functools.lru_cache(maxsize=16_384)
def _iso(seconds: int) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
