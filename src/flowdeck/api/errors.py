"""Domain errors become HTTP statuses here, and only here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flowdeck.api.responses import JSON
from flowdeck.errors import Conflict, FieldProblem, InvalidInput, NotFound, StoreUnavailable


class ApiError(Exception):
    """An HTTP error with a message meant for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def problem_body(problems: list[FieldProblem]) -> dict[str, object]:
    return {
        "message": "; ".join(str(p) for p in problems[:5])
        + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
        "detail": [{"loc": p.loc, "msg": p.msg, "type": p.type} for p in problems],
    }


def domain_response(exc: Exception) -> Response | None:
    """The response for a domain error (None for any other exception)."""
    if isinstance(exc, InvalidInput):
        return JSON(problem_body(exc.problems), status_code=422)
    if isinstance(exc, NotFound):
        return JSON({"message": str(exc)}, status_code=404)
    if isinstance(exc, Conflict):
        return JSON({"message": str(exc)}, status_code=409)
    if isinstance(exc, StoreUnavailable):
        return JSON({"message": f"database unavailable: {exc}"}, status_code=503)
    if isinstance(exc, ApiError):
        return JSON({"message": exc.message}, status_code=exc.status)
    return None


def install(app: FastAPI) -> None:
    async def domain_error(_request: Request, exc: Exception) -> Response:
        response = domain_response(exc)
        assert response is not None, exc
        return response

    for kind in (InvalidInput, NotFound, Conflict, StoreUnavailable, ApiError):
        app.add_exception_handler(kind, domain_error)

    @app.exception_handler(RequestValidationError)
    async def invalid_params(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            FieldProblem(
                ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
                err["msg"],
                err["type"],
            )
            for err in exc.errors()
        ]
        return JSON(problem_body(problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return JSON({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)
