"""Validation of run reports at the edge: JSON bytes in, plain dicts (only the fields given)
out. Error locations name the field as the client wrote it: ``runs[3].started_at``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.models import RunIn

_ONE = TypeAdapter(RunIn)
_MANY = TypeAdapter(list[RunIn])
_ZERO = timedelta(0)
_WHITESPACE = b" \t\r\n"
Locate = Callable[[int], str]


class BadJson(ValueError):
    """The body is not JSON at all (HTTP 400)."""


class TooManyRuns(ValueError):
    """More runs than one request may carry (HTTP 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"runs: at most {limit} runs per request, got {count}")


def locator(single: bool) -> Locate:
    return (lambda _i: "run") if single else (lambda i: f"runs[{i}]")


def _where(parts: tuple[str | int, ...], single: bool) -> str:
    locate = locator(single)
    if not single:
        if not parts:
            return "runs"
        head, *rest = parts
        where = locate(int(head))
    else:
        where, rest = "run", list(parts)
    for part in rest:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where


# Pydantic names the branch of a union in an error's location; clients never wrote those.
_UNION_TAGS = frozenset({"str", "int", "constrained-str", "function-after[...]"})


def problems_from(error: ValidationError, single: bool) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    seen_union: set[str] = set()
    for item in error.errors(include_url=False):
        if item["type"] == "json_invalid":
            raise BadJson(f"body is not valid JSON: {item['ctx']['error']}")
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        where = _where(loc, single)
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "is not a known field"
        elif item["type"] == "timezone_aware":
            msg = "must include a time zone offset (e.g. 2026-01-31T02:00:00Z)"
        elif item["type"] in ("string_type", "int_type") and where.endswith(".batch_id"):
            # batch_id is text or a whole number; say so once rather than per branch.
            if where in seen_union:
                continue
            seen_union.add(where)
            msg = "must be a string or an integer"
        elif item["type"] in ("dict_type", "model_type") and loc == ():
            msg = "must be a run object or a list of run objects"
            where = "body"
        out.append(FieldProblem(where, msg, item["type"]))
    return out


def parse_reports(body: bytes, max_runs: int) -> tuple[list[dict[str, Any]], Locate]:
    """Validate a JSON body: one run object, or a list of them.

    Returns the reports with ``run_id`` always set (generated when absent), timestamps in
    UTC and ``batch_id`` as text. Raises InvalidInput naming every offending field,
    BadJson for a body that is not JSON and TooManyRuns over ``max_runs``.
    """
    start = body.lstrip(_WHITESPACE)[:1]
    single = start != b"["
    try:
        items = [_ONE.validate_json(body)] if single else _MANY.validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(problems_from(exc, single)) from None
    if not items:
        raise InvalidInput([FieldProblem("runs", "must contain at least one run")])
    if len(items) > max_runs:
        raise TooManyRuns(len(items), max_runs)

    # Rules across fields (ended_at after started_at, …) are checked once, by the merge in
    # the writer, which names the report with the same locator.
    reports: list[dict[str, Any]] = []
    for item in items:
        report: dict[str, Any] = {k: v for k, v in item.items() if v is not None}
        if "run_id" not in report:
            report["run_id"] = str(uuid.uuid4())
        batch_id = report.get("batch_id")
        if batch_id is not None and not isinstance(batch_id, str):
            report["batch_id"] = str(batch_id)
        for key in ("started_at", "ended_at"):
            value = report.get(key)
            if value is not None and value.utcoffset() != _ZERO:
                report[key] = value.astimezone(UTC)
        reports.append(report)
    return reports, locator(single)
