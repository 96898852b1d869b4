"""Domain errors become HTTP statuses here, and only here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from flowdeck.api.responses import JSON
from flowdeck.errors import FieldProblem, InvalidInput, NotFound, StoreUnavailable


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


def install(app: FastAPI) -> None:
    @app.exception_handler(InvalidInput)
    async def invalid(_request: Request, exc: InvalidInput) -> Response:
        return JSON(problem_body(exc.problems), status_code=422)

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

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> Response:
        return JSON({"message": str(exc)}, status_code=404)

    @app.exception_handler(StoreUnavailable)
    async def unavailable(_request: Request, exc: StoreUnavailable) -> Response:
        return JSON({"message": f"database unavailable: {exc}"}, status_code=503)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return JSON({"message": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return JSON({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)
