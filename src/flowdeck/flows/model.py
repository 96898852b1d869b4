"""What a flow declaration is: a pipeline's ordered stages, the signal types its events carry,
the traffic-light thresholds of its live view and the share of events sampled for review.
Checked at the edge; every rule's message names the field (``stages[2].name``) and the rule.

Thresholds are pairs: a value at or above ``orange`` lights orange, at or above ``red``
lights red; ``null`` switches that colour off. The defaults (docs/live-pipelines.md):

====================  ======  =====  =========================================================
threshold             orange  red    value compared
====================  ======  =====  =========================================================
queue_fill            0.5     0.9    a stage's queue depth / its ``queue_capacity``
load                  0.8     1.0    a stage's arrival rate / its ``capacity_per_s``
failure_rate          0.02    0.05   failed / (processed + failed) at a stage
stage_latency_p95_ms  off     off    p95 of ``flow.stage_latency_ms`` (a stage's own wins)
e2e_latency_p95_ms    2000    5000   p95 of ``flow.e2e_latency_ms`` over the pipeline
backlog               off     off    events waiting over all stages (sum of queue depths)
====================  ======  =====  =========================================================

Besides these, a stage whose events arrive (or wait) while none is processed over the window
is red (stalled), and a pipeline that reported nothing for ``stale_after_s`` (default 120 s)
is orange.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.validation import field_problems

Light = Literal["green", "orange", "red"]
LIGHTS: Final[tuple[Light, ...]] = ("green", "orange", "red")
MAX_STAGES: Final = 20
MAX_SIGNALS: Final = 50
REVIEW_RATE_MIN: Final = 0.005
REVIEW_RATE_MAX: Final = 0.02
DEFAULT_REVIEW_RATE: Final = 0.01
DEFAULT_PROJECT: Final = "default"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAME_RULE: Final = (
    "must be 1 to 200 characters: a letter, digit or _ first, then letters, digits, _ . : -"
)


def worst(lights: Any) -> Light:
    """The most severe of some lights (green when there are none)."""
    return max(lights, key=LIGHTS.index, default="green")


# -- the declaration, as the rest of flowdeck reads it ----------------------------------------
@dataclass(frozen=True, slots=True)
class Limit:
    """One traffic-light threshold: a value ≥ ``red`` is red, else ≥ ``orange`` orange."""

    orange: float | None
    red: float | None

    def light(self, value: float | None) -> Light:
        if value is None:
            return "green"
        if self.red is not None and value >= self.red:
            return "red"
        if self.orange is not None and value >= self.orange:
            return "orange"
        return "green"

    def out(self) -> dict[str, float | None]:
        return {"orange": self.orange, "red": self.red}


@dataclass(frozen=True, slots=True)
class Thresholds:
    queue_fill: Limit = Limit(0.5, 0.9)
    load: Limit = Limit(0.8, 1.0)
    failure_rate: Limit = Limit(0.02, 0.05)
    stage_latency_p95_ms: Limit = Limit(None, None)
    e2e_latency_p95_ms: Limit = Limit(2000.0, 5000.0)
    backlog: Limit = Limit(None, None)
    stale_after_s: float = 120.0

    def out(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.out() if isinstance(value, Limit) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Thresholds:
        """From what :meth:`out` wrote (missing keys keep their defaults)."""
        given: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "stale_after_s":
                given[f.name] = float(value)
            else:
                given[f.name] = Limit(value.get("orange"), value.get("red"))
        return cls(**given)


LIMIT_NAMES: Final = tuple(f.name for f in fields(Thresholds) if f.name != "stale_after_s")


@dataclass(frozen=True, slots=True)
class StageSpec:
    name: str
    queue_capacity: int | None = None  # events the stage's queue holds
    capacity_per_s: float | None = None  # nominal throughput, events per second
    # This stage's own p95 latency threshold, instead of the flow's stage_latency_p95_ms.
    latency_p95_ms: Limit | None = None

    def out(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue_capacity": self.queue_capacity,
            "capacity_per_s": self.capacity_per_s,
            "latency_p95_ms": None if self.latency_p95_ms is None else self.latency_p95_ms.out(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageSpec:
        limit = data.get("latency_p95_ms")
        return cls(
            data["name"],
            data.get("queue_capacity"),
            data.get("capacity_per_s"),
            None if limit is None else Limit(limit.get("orange"), limit.get("red")),
        )


@dataclass(frozen=True, slots=True)
class FlowSpec:
    project: str
    pipeline: str
    title: str
    stages: tuple[StageSpec, ...]
    signals: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    review_rate: float = DEFAULT_REVIEW_RATE
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def stage(self, name: str) -> StageSpec | None:
        return next((s for s in self.stages if s.name == name), None)

    def spec_json(self) -> dict[str, Any]:
        """What the store keeps (the key and the times are columns of their own)."""
        return {
            "title": self.title,
            "description": self.description,
            "stages": [s.out() for s in self.stages],
            "signals": list(self.signals),
            "thresholds": self.thresholds.out(),
            "review_rate": self.review_rate,
        }

    def out(self) -> dict[str, Any]:
        """The API's answer."""
        return {
            "project": self.project,
            "pipeline": self.pipeline,
            **self.spec_json(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "url": f"/flows/{self.pipeline}"
            + ("" if self.project == DEFAULT_PROJECT else f"?project={self.project}"),
        }

    @classmethod
    def from_json(
        cls,
        project: str,
        pipeline: str,
        spec: Mapping[str, Any],
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
    ) -> FlowSpec:
        return cls(
            project=project,
            pipeline=pipeline,
            title=spec.get("title") or pipeline,
            stages=tuple(StageSpec.from_json(s) for s in spec.get("stages", [])),
            signals=tuple(spec.get("signals", [])),
            thresholds=Thresholds.from_json(spec.get("thresholds", {})),
            review_rate=float(spec.get("review_rate", DEFAULT_REVIEW_RATE)),
            description=spec.get("description", ""),
            created_at=created_at,
            updated_at=updated_at,
        )


# -- the edge: JSON in, checked ---------------------------------------------------------------
def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(_NAME_RULE)
    return value


def check_project(value: str) -> str:
    if not 1 <= len(value) <= 200 or _CONTROL.search(value):
        raise ValueError("must be 1 to 200 characters without control characters")
    return value


def _check_review_rate(value: float) -> float:
    if not REVIEW_RATE_MIN <= value <= REVIEW_RATE_MAX:
        raise ValueError(
            f"must be between {REVIEW_RATE_MIN} and {REVIEW_RATE_MAX} (0.5 % to 2 % of events)"
        )
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Name = Annotated[str, AfterValidator(check_name)]
Project = Annotated[str, AfterValidator(check_project)]
Number = Annotated[float, AfterValidator(_finite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitIn(_Strict):
    orange: Number | None = Field(default=None, ge=0)
    red: Number | None = Field(default=None, ge=0)

    def problems(self, where: str) -> list[FieldProblem]:
        if self.orange is not None and self.red is not None and self.red < self.orange:
            return [
                FieldProblem(
                    f"{where}.red", f"must be at least orange ({self.orange:g}); got {self.red:g}"
                )
            ]
        return []


class StageIn(_Strict):
    name: Name
    queue_capacity: int | None = Field(default=None, ge=1, le=10**12)
    capacity_per_s: Number | None = Field(default=None, gt=0)
    latency_p95_ms: LimitIn | None = None  # a missing side is off


class ThresholdsIn(_Strict):
    queue_fill: LimitIn | None = None
    load: LimitIn | None = None
    failure_rate: LimitIn | None = None
    stage_latency_p95_ms: LimitIn | None = None
    e2e_latency_p95_ms: LimitIn | None = None
    backlog: LimitIn | None = None
    stale_after_s: Number | None = Field(default=None, ge=10, le=86_400)


class FlowIn(_Strict):
    """The body of ``PUT /api/v1/flows/{pipeline}``."""

    project: Project = DEFAULT_PROJECT
    pipeline: Name | None = None  # may repeat the path's; must then be the same
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2_000)
    stages: list[StageIn] = Field(min_length=1, max_length=MAX_STAGES)
    signals: list[Name] = Field(default_factory=list, max_length=MAX_SIGNALS)
    thresholds: ThresholdsIn = Field(default_factory=ThresholdsIn)
    review_rate: Annotated[Number, AfterValidator(_check_review_rate)] = DEFAULT_REVIEW_RATE


def _merge(given: ThresholdsIn) -> tuple[Thresholds, list[FieldProblem]]:
    """The thresholds given over the defaults (a pair's missing side keeps its default; an
    explicit null switches it off), and the problems of the result."""
    base = Thresholds()
    values: dict[str, Any] = {}
    problems = []
    for name in LIMIT_NAMES:
        default: Limit = getattr(base, name)
        limit_in: LimitIn | None = getattr(given, name)
        if limit_in is None:
            values[name] = default
            continue
        given_sides = limit_in.model_fields_set
        chosen = {
            side: getattr(limit_in if side in given_sides else default, side)
            for side in ("orange", "red")
        }
        limit = Limit(chosen["orange"], chosen["red"])
        if limit.orange is not None and limit.red is not None and limit.red < limit.orange:
            problems.append(
                FieldProblem(
                    f"thresholds.{name}.red",
                    f"must be at least orange ({limit.orange:g}); got {limit.red:g}",
                )
            )
        values[name] = limit
    if given.stale_after_s is not None:
        values["stale_after_s"] = given.stale_after_s
    return Thresholds(**values), problems


def parse_flow(data: Any, pipeline: str) -> FlowSpec:
    """A flow declaration for ``pipeline`` (the path's) from parsed JSON; InvalidInput names
    every broken rule and nothing is kept then."""
    try:
        check_name(pipeline)
    except ValueError as exc:
        raise InvalidInput([FieldProblem("pipeline", str(exc))]) from None
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        flow = FlowIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc)) from None
    problems: list[FieldProblem] = []
    if flow.pipeline is not None and flow.pipeline != pipeline:
        problems.append(
            FieldProblem(
                "pipeline", f"must be the path's pipeline {pipeline!r}; got {flow.pipeline!r}"
            )
        )
    seen: dict[str, int] = {}
    for i, stage in enumerate(flow.stages):
        if stage.name in seen:
            problems.append(
                FieldProblem(
                    f"stages[{i}].name",
                    f"must be unique; {stage.name!r} is also stages[{seen[stage.name]}]",
                )
            )
        seen.setdefault(stage.name, i)
        if stage.latency_p95_ms is not None:
            problems += stage.latency_p95_ms.problems(f"stages[{i}].latency_p95_ms")
    signals: dict[str, int] = {}
    for i, signal in enumerate(flow.signals):
        if signal in signals:
            problems.append(
                FieldProblem(
                    f"signals[{i}]",
                    f"must be unique; {signal!r} is also signals[{signals[signal]}]",
                )
            )
        signals.setdefault(signal, i)
    thresholds, more = _merge(flow.thresholds)
    problems += more
    if problems:
        raise InvalidInput(problems)
    return FlowSpec(
        project=flow.project,
        pipeline=pipeline,
        title=flow.title.strip() or pipeline,
        stages=tuple(
            StageSpec(
                s.name,
                s.queue_capacity,
                s.capacity_per_s,
                None
                if s.latency_p95_ms is None
                else Limit(s.latency_p95_ms.orange, s.latency_p95_ms.red),
            )
            for s in flow.stages
        ),
        signals=tuple(flow.signals),
        thresholds=thresholds,
        review_rate=flow.review_rate,
        description=flow.description,
    )
