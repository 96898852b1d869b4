"""Validation of run reports at the edge: JSON in, plain dicts (only the fields given) out.
Error locations name the field as the client wrote it: ``runs[3].started_at``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

from pydantic import TypeAdapter, ValidationError

from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.models import RunIn
from flowdeck.runs import RunProblem, check_report

_RUNS = TypeAdapter(list[RunIn])
Locate = Callable[[int], str]


def locator(single: bool) -> Locate:
    return (lambda _i: "run") if single else (lambda i: f"runs[{i}]")


def _loc(parts: tuple[str | int, ...], locate: Locate) -> str:
    if not parts:
        return locate(0)
    head, *rest = parts
    where = locate(head) if isinstance(head, int) else str(head)
    for part in rest:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where


def problems_from(error: ValidationError, locate: Locate) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    seen_union: set[str] = set()
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "is not a known field"
        elif item["type"] == "timezone_aware":
            msg = "must include a time zone offset (e.g. 2026-01-31T02:00:00Z)"
        where = _loc(loc, locate)
        if item["type"] in ("string_type", "int_type") and where.endswith(".batch_id"):
            # batch_id is text or a whole number; say so once rather than per branch.
            if where in seen_union:
                continue
            seen_union.add(where)
            msg = "must be a string or an integer"
        out.append(FieldProblem(where, msg, item["type"]))
    return out


# Pydantic names the branch of a union in the location; clients never wrote those.
_UNION_TAGS = frozenset({"str", "int", "constrained-str", "function-after[...]"})


def parse_reports(payload: Any, max_runs: int) -> tuple[list[dict[str, Any]], Locate]:
    """Validate a decoded JSON body (one run object, or a list of them).

    Returns the reports with ``run_id`` always set (generated when absent), timestamps in
    UTC and ``batch_id`` as text. Raises InvalidInput naming every offending field.
    """
    if isinstance(payload, dict):
        items, locate = [payload], locator(single=True)
    elif isinstance(payload, list):
        items, locate = payload, locator(single=False)
        if not items:
            raise InvalidInput([FieldProblem("runs", "must contain at least one run")])
    else:
        raise InvalidInput([FieldProblem("body", "must be a run object or a list of run objects")])
    if len(items) > max_runs:
        raise TooManyRuns(len(items), max_runs)
    try:
        runs = _RUNS.validate_python(items)
    except ValidationError as exc:
        raise InvalidInput(problems_from(exc, locate)) from None

    reports: list[dict[str, Any]] = []
    problems: list[FieldProblem] = []
    for i, run in enumerate(runs):
        report = run.model_dump(exclude_none=True)
        if "run_id" not in report:
            report["run_id"] = str(uuid.uuid4())
        if "batch_id" in report:
            report["batch_id"] = str(report["batch_id"])
        for key in ("started_at", "ended_at"):
            if key in report:
                report[key] = report[key].astimezone(UTC)
        try:
            check_report(report)
        except RunProblem as exc:
            problems.append(FieldProblem(f"{locate(i)}.{exc.field}", exc.msg))
        reports.append(report)
    if problems:
        raise InvalidInput(problems)
    return reports, locate


class TooManyRuns(Exception):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"runs: at most {limit} runs per request, got {count}")
