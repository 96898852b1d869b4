"""An incident: one problem of one pipeline (a stage's queue overflowing, a stage stalled, an
SLO missed) from the moment it opened until it recovered and closed, with a summary a person
can act on and a timeline of what the signals did meanwhile."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from urllib.parse import quote, urlencode

QUEUE_OVERFLOW: Final = "queue_overflow"
STALLED_STAGE: Final = "stalled_stage"
MISSED_SLO: Final = "missed_slo"
KINDS: Final = (QUEUE_OVERFLOW, STALLED_STAGE, MISSED_SLO)
KIND_NAMES: Final[Mapping[str, str]] = {
    QUEUE_OVERFLOW: "Queue overflow",
    STALLED_STAGE: "Stalled stage",
    MISSED_SLO: "Missed SLO",
}

OPEN: Final = "open"
CLOSED: Final = "closed"
STATES: Final = (OPEN, CLOSED)

# The alert engine's severities, mildest first.
SEVERITIES: Final = ("info", "warning", "error", "critical")

# What a timeline entry records.
Moment = Literal[
    "began",  # the condition was first seen (the incident opens a hold time later)
    "opened",
    "worsened",  # the reading grew by the worsen factor since the last entry, or severity rose
    "peak",  # the worst reading, noted when the recovery starts
    "recovering",  # the condition cleared; the incident closes after the calm period
    "relapsed",  # it came back during the calm period: the same incident goes on
    "closed",
]


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    what: Moment
    text: str
    value: float | None = None

    def out(self) -> dict[str, Any]:
        return {"at": self.at, "what": self.what, "text": self.text, "value": self.value}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TimelineEntry:
        at = data["at"]
        if isinstance(at, str):
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        value = data.get("value")
        return cls(
            at.astimezone(UTC), data["what"], str(data["text"]), None if value is None else value
        )


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    project: str
    pipeline: str
    kind: str
    # What within the pipeline: the stage's name, the SLO's name, or "" for the whole
    # pipeline. (project, pipeline, kind, subject) has at most one open incident.
    subject: str
    stage: str | None  # the stage where it shows (None for a pipeline-wide problem)
    slo: str | None  # the SLO missed (missed_slo only)
    severity: str
    state: str  # open | closed
    started_at: datetime  # when the condition began
    opened_at: datetime  # started_at + the hold time, or later
    closed_at: datetime | None
    recovering_since: datetime | None  # the condition cleared; closes after the calm period
    updated_at: datetime
    title: str  # "Queue overflow at enrich"
    reading: str  # the latest reading in words: "3,000 events wait at enrich, 3.0× its …"
    summary: str  # the whole message: what, where, since when, impact, cause, action
    impact: str  # in events and latency
    cause: str  # the likely cause, naming the bottleneck stage when there is one
    action: str  # what to do first
    bottleneck: str | None  # the stage under most pressure when the incident was last active
    value: float | None  # the latest reading while active (bigger is worse; see detect.py)
    peak: float | None
    peak_at: datetime | None
    numbers: Mapping[str, float | None]  # impact figures: backlog, e2e_p95_ms, …
    timeline: tuple[TimelineEntry, ...]

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.project, self.pipeline, self.kind, self.subject)

    @property
    def is_open(self) -> bool:
        return self.state == OPEN

    def duration_s(self, now: datetime) -> float:
        """How long the condition lasted: until it recovered, for a closed incident."""
        end = (self.recovering_since or self.closed_at or now) if not self.is_open else now
        return (end - self.started_at).total_seconds()

    @property
    def peak_reading(self) -> str:
        """The worst reading in words (the latest, when no peak was noted)."""
        peaks = [e.text for e in self.timeline if e.what == "peak"]
        return peaks[-1] if peaks else self.reading

    @property
    def recovery_reading(self) -> str | None:
        """What the signals said when the condition cleared (recovering or closed)."""
        found = [e.text for e in self.timeline if e.what == "recovering"]
        if not found or self.recovering_since is None:
            return None
        return found[-1].split("; closes after ")[0]

    def out(self, flow_declared: bool = True) -> dict[str, Any]:
        """The incident as the API shows it (``flow_declared``: does its pipeline declare a
        flow, whose live page the links may name)."""
        return {
            "id": self.id,
            "project": self.project,
            "pipeline": self.pipeline,
            "kind": self.kind,
            "stage": self.stage,
            "slo": self.slo,
            "severity": self.severity,
            "state": self.state,
            "recovering": self.recovering_since is not None and self.is_open,
            "title": self.title,
            "reading": self.reading,
            "summary": self.summary,
            "impact": self.impact,
            "cause": self.cause,
            "action": self.action,
            "bottleneck": self.bottleneck,
            "started_at": self.started_at,
            "opened_at": self.opened_at,
            "recovering_since": self.recovering_since,
            "closed_at": self.closed_at,
            "updated_at": self.updated_at,
            "value": self.value,
            "peak": self.peak,
            "peak_at": self.peak_at,
            "numbers": dict(self.numbers),
            "timeline": [e.out() for e in self.timeline],
            "links": self.links(flow_declared),
        }

    def links(self, flow_declared: bool = True) -> dict[str, str | None]:
        """The pages of the incident, its pipeline's flow (when it declares one: an SLO of a
        batch pipeline may not) and the SLO it concerns."""
        scope = "" if self.project == "default" else f"?{urlencode({'project': self.project})}"
        flow = f"/flows/{quote(self.pipeline, safe='')}{scope}" if flow_declared else None
        return {
            "self": f"/incidents/{quote(self.id, safe='')}",
            "flow": flow,
            "slo": f"/slos/{quote(self.slo, safe='')}" if self.slo else None,
        }
