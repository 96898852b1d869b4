"""Pydantic's validation errors as :class:`FieldProblem` s: ``widgets[2].type`` and the rule,
in the words the API uses everywhere."""

from __future__ import annotations

from pydantic import ValidationError

from flowdeck.errors import FieldProblem


def field_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    out = []
    for err in exc.errors(include_url=False):
        where = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                where += f"[{part}]"
            elif not part.startswith(("function-", "constrained-")) and part not in ("str", "int"):
                where += f".{part}" if where else part
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known field"
        elif err["type"] == "missing":
            msg = "is required"
        out.append(FieldProblem(where or "body", msg, err["type"]))
    return out
