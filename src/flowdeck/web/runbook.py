"""The runbook page: docs/runbook.md rendered in the app's layout, one anchor per heading
(notifications link to ``/runbook#<rule kind>``). The Markdown itself is at /runbook.md."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from flowdeck.alerts import runbook
from flowdeck.web.pages import page

router = APIRouter(include_in_schema=False)


@router.get("/runbook")
def runbook_page(request: Request) -> Response:
    rendered = runbook.page()
    if rendered is None:
        return page(
            request,
            "error.html",
            {
                "title": "Not found",
                "message": "the runbook is not installed with this flowdeck",
                "nav": None,
            },
            status_code=404,
        )
    contents = [h for h in rendered.headings if h.level == 2]
    return page(
        request,
        "runbook.html",
        {"body": rendered.html, "contents": contents, "nav": "runbook"},
    )
