"""What a review sample, a decision and a sampling setting are, validated at the edge. Every
rule's message names the field (``samples[3].record``) and the rule."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.review.sampling import check_rate
from flowdeck.validation import field_problems

STATUSES: Final = ("pending", "approved", "rejected")
OUTCOMES: Final = ("approved", "rejected")
MAX_SAMPLES: Final = 1000  # per request
MAX_DOC_BYTES: Final = 64 * 1024  # record, and context, each as JSON
MAX_NOTE: Final = 2000
NO_SIGNAL: Final = "unspecified"  # the signal of a sample that names none (a metric tag)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Outcome = Literal["approved", "rejected"]
Status = Literal["pending", "approved", "rejected"]


def _plain(limit: int) -> Any:
    def check(value: str) -> str:
        if not 1 <= len(value) <= limit or _CONTROL.search(value):
            raise ValueError(f"must be 1 to {limit} characters without control characters")
        return value

    return AfterValidator(check)


def check_name(value: str, where: str, limit: int = 200) -> str:
    """``value`` as a name (a pipeline in a URL); InvalidInput naming ``where`` otherwise."""
    if not 1 <= len(value) <= limit or _CONTROL.search(value):
        raise InvalidInput(
            [FieldProblem(where, f"must be 1 to {limit} characters without control characters")]
        )
    return value


def _document(value: dict[str, Any]) -> dict[str, Any]:
    size = len(orjson.dumps(value))
    if size > MAX_DOC_BYTES:
        raise ValueError(f"must be at most {MAX_DOC_BYTES} bytes as JSON; got {size}")
    return value


def _since_1970(value: datetime) -> datetime:
    if value.year < 1970:
        raise ValueError("must be on or after 1970-01-01")
    return value


Name = Annotated[str, _plain(200)]
Signal = Annotated[str, _plain(100)]
Document = Annotated[dict[str, Any], AfterValidator(_document)]


class SampleIn(BaseModel):
    """One sampled event as the pipeline sends it."""

    model_config = ConfigDict(extra="forbid")
    pipeline: Name
    project: Name = "default"
    event_id: Name
    signal: Signal = NO_SIGNAL
    record: Document = Field(description="the event as the pipeline produced it")
    context: Document = Field(
        default_factory=dict, description="what a reviewer needs to judge it: source, inputs…"
    )
    sampled_at: Annotated[AwareDatetime, AfterValidator(_since_1970)] | None = Field(
        default=None, description="default: received time"
    )

    @property
    def id(self) -> str:
        return sample_id(self.project, self.pipeline, self.event_id)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Outcome
    note: Annotated[str, Field(max_length=MAX_NOTE)] = ""
    reviewer: Annotated[str, Field(max_length=100)] = ""


class SettingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: Name = "default"
    rate: Annotated[float, Field(allow_inf_nan=False), AfterValidator(check_rate)]


def sample_id(project: str, pipeline: str, event_id: str) -> str:
    """A sample's id: the same for the same event of the same pipeline, on every replica,
    which is what makes a re-post a no-op."""
    key = orjson.dumps([project, pipeline, event_id])
    return hashlib.sha256(key).hexdigest()[:16]


def parse_samples(data: Any) -> list[SampleIn]:
    """One sample or a list of them; InvalidInput names every broken rule."""
    single = isinstance(data, dict)
    items = [data] if single else data
    if not isinstance(items, list):
        raise InvalidInput([FieldProblem("body", "must be a sample object or a list of them")])
    if not items:
        raise InvalidInput([FieldProblem("samples", "must contain at least one sample")])
    if len(items) > MAX_SAMPLES:
        raise InvalidInput(
            [FieldProblem("samples", f"at most {MAX_SAMPLES} per request; got {len(items)}")]
        )
    out: list[SampleIn] = []
    problems: list[FieldProblem] = []
    for i, item in enumerate(items):
        where = "sample" if single else f"samples[{i}]"
        if not isinstance(item, dict):
            problems.append(FieldProblem(where, "must be a JSON object"))
            continue
        try:
            out.append(SampleIn.model_validate(item))
        except ValidationError as exc:
            problems.extend(field_problems(exc, where))
    if problems:
        raise InvalidInput(problems)
    return out


def parse_decision(data: Any) -> DecisionIn:
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        decision = DecisionIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc)) from None
    decision = decision.model_copy(
        update={"note": decision.note.strip(), "reviewer": decision.reviewer.strip()}
    )
    if decision.outcome == "rejected" and not decision.note:
        raise InvalidInput(
            [FieldProblem("note", "is required when the outcome is rejected: say what is wrong")]
        )
    return decision


def parse_setting(data: Any) -> SettingIn:
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        return SettingIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc)) from None


@dataclass(frozen=True, slots=True)
class Sample:
    """A stored sample."""

    id: str
    project: str
    pipeline: str
    event_id: str
    signal: str
    record: dict[str, Any]
    context: dict[str, Any]
    sampled_at: datetime
    received_at: datetime
    status: str
    note: str | None
    reviewer: str | None
    decided_at: datetime | None

    def out(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "pipeline": self.pipeline,
            "event_id": self.event_id,
            "signal": self.signal,
            "status": self.status,
            "record": self.record,
            "context": self.context,
            "sampled_at": self.sampled_at,
            "received_at": self.received_at,
            "note": self.note,
            "reviewer": self.reviewer,
            "decided_at": self.decided_at,
            "url": f"/review/{self.id}",
        }


@dataclass(frozen=True, slots=True)
class SampleFilter:
    """Which samples a list, a count or an export is about (None: any)."""

    status: str | None = None
    project: str | None = None
    pipeline: str | None = None
    signal: str | None = None
    since: datetime | None = None  # sampled_at at or after
    until: datetime | None = None  # sampled_at before

    def without_status(self) -> SampleFilter:
        return SampleFilter(None, self.project, self.pipeline, self.signal, self.since, self.until)


@dataclass(frozen=True, slots=True)
class RateSetting:
    """A pipeline's effective sampling rate and where it comes from: the flow declaration
    (part of the live pipeline view), the review setting, or the default."""

    project: str
    pipeline: str
    rate: float
    source: Literal["flow", "setting", "default"]
    setting: float | None  # the review setting stored for it, if any
    updated_at: datetime | None

    def out(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "pipeline": self.pipeline,
            "rate": self.rate,
            "source": self.source,
            "setting": self.setting,
            "updated_at": self.updated_at,
        }
