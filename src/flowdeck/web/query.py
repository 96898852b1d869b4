"""Reading the pages' query strings, where a blank field means the same as a missing one."""

from __future__ import annotations

from datetime import date

from starlette.datastructures import QueryParams

from flowdeck.errors import FieldProblem, InvalidInput


def one(params: QueryParams, name: str) -> str | None:
    """The parameter's value without surrounding blanks; None when missing or blank."""
    value = params.get(name)
    return value.strip() or None if value is not None else None


def one_date(params: QueryParams, name: str) -> date | None:
    """The parameter as a date (YYYY-MM-DD), None when missing or blank; InvalidInput
    naming it otherwise."""
    raw = one(params, name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            [FieldProblem(name, f"must be a date YYYY-MM-DD; got {raw!r}")]
        ) from None
