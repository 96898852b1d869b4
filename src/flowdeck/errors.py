"""Domain errors. The store raises these; the API maps them to HTTP once (api/errors.py)."""

from __future__ import annotations

from dataclasses import dataclass


class FlowdeckError(Exception):
    """Base class of every error flowdeck raises on purpose."""


class NotFound(FlowdeckError):
    """An id names nothing stored (HTTP 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


@dataclass(frozen=True)
class FieldProblem:
    """One invalid value: where it is (``runs[3].started_at``) and which rule it breaks."""

    loc: str
    msg: str
    type: str = "value_error"

    def __str__(self) -> str:
        return f"{self.loc}: {self.msg}" if self.loc else self.msg


class InvalidInput(FlowdeckError):
    """Input breaks a rule (HTTP 422). Nothing of the request was written."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:5]))


class Conflict(FlowdeckError):
    """The request would overwrite a newer version of what it names (HTTP 409)."""


class UnknownBackend(FlowdeckError):
    """A database URL whose scheme flowdeck has no store for."""


class StoreUnavailable(FlowdeckError):
    """The database failed or went away (HTTP 503)."""
