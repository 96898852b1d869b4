"""The filters of the incident list (``GET /api/v1/incidents`` and the page), checked at the
edge: a bad one is refused naming the parameter and the rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.incidents.model import KINDS, STATES

DEFAULT_LIMIT: Final = 200
MAX_LIMIT: Final = 1000
MAX_NAME: Final = 200


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    state: str = "all"  # open | closed | all
    project: str | None = None
    pipeline: str | None = None
    kind: str | None = None
    limit: int = DEFAULT_LIMIT

    def filters(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "pipeline": self.pipeline,
            "kind": self.kind,
            "limit": self.limit,
        }

    def params(self) -> dict[str, str]:
        """The query string that asks for this again (defaults left out)."""
        out = {"state": self.state} if self.state != "all" else {}
        for name in ("project", "pipeline", "kind"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        if self.limit != DEFAULT_LIMIT:
            out["limit"] = str(self.limit)
        return out


def parse_query(params: Mapping[str, str], default_state: str = "all") -> IncidentQuery:
    """InvalidInput naming every bad parameter."""
    problems: list[FieldProblem] = []
    state = (params.get("state") or default_state).strip()
    if state not in (*STATES, "all"):
        problems.append(FieldProblem("state", f"must be open, closed or all, got {state!r}"))
    kind = params.get("kind") or None
    if kind is not None and kind not in KINDS:
        problems.append(FieldProblem("kind", f"must be one of {', '.join(KINDS)}, got {kind!r}"))
    names: dict[str, str | None] = {}
    for name in ("project", "pipeline"):
        value = params.get(name) or None
        if value is not None and len(value) > MAX_NAME:
            problems.append(FieldProblem(name, f"must be at most {MAX_NAME} characters"))
        names[name] = value
    raw_limit = params.get("limit")
    limit = DEFAULT_LIMIT
    if raw_limit:
        if not raw_limit.strip().isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            problems.append(
                FieldProblem(
                    "limit", f"must be a whole number from 1 to {MAX_LIMIT}, got {raw_limit!r}"
                )
            )
        else:
            limit = int(raw_limit)
    if problems:
        raise InvalidInput(problems)
    return IncidentQuery(state, names["project"], names["pipeline"], kind, limit)
