"""The dashboard's pages. Each one has a JSON twin under /api/v1 and reads the data through
the same plain functions; a page adds only the HTML.

htmx asks for a part of a page by naming its target (``HX-Target``): ``runs`` (the process
table with its controls, after a sort, page or filter change) or ``runs-data`` (the table
alone, for a live refresh that must not reset a half-edited filter). Both answers carry the
batch cards as an out-of-band swap.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

import flowdeck.api.paths  # noqa: F401  (registers the {batch_id:batch} convertor)
from flowdeck import __version__
from flowdeck.api.batches import PAGE_SIZES
from flowdeck.api.quality import dq_page
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.api.shapes import run_out
from flowdeck.api.trends import trends_in
from flowdeck.batches import DQ_WARNING_RATE
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput, NotFound, StoreUnavailable
from flowdeck.quality import is_dq_warning
from flowdeck.web.dashboard import COLUMNS, STATUSES, WINDOWS, load_dashboard, parse_selection
from flowdeck.web.templating import templates

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

FRAGMENTS = {"runs": "_runs.html", "runs-data": "_runs_data.html"}
TREND_WINDOWS = {"7d": "Last 7 days", "30d": "Last 30 days"}
INDEX = {
    "name": "flowdeck",
    "version": __version__,
    "api": "/api/v1",
    "openapi": "/openapi.json",
    "docs": "/docs",
    "health": "/healthz",
}


def wants_html(request: Request) -> bool:
    """Browsers ask for text/html (htmx's requests say so with HX-Request); API clients
    (and a bare curl) get the JSON index."""
    if request.headers.get("hx-request"):
        return True
    accept = request.headers.get("accept", "")
    html, json = accept.find("text/html"), accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def error_page(request: Request, exc: FlowdeckError) -> Response:
    status = (
        404
        if isinstance(exc, NotFound)
        else 422
        if isinstance(exc, InvalidInput)
        else 503
        if isinstance(exc, StoreUnavailable)
        else 500
    )
    titles = {404: "Not found", 422: "Invalid link", 503: "Database unavailable"}
    return page(
        request,
        "error.html",
        {"title": titles.get(status, "Error"), "message": str(exc), "nav": None},
        status_code=status,
    )


@router.get("/")
def home(request: Request, svc: Svc) -> Response:
    """The dashboard this browser made its home page (cookie), else the batch dashboard;
    the JSON index for API clients. A link with a query is always the batch dashboard's."""
    if not wants_html(request):
        return JSON(INDEX)
    if not request.query_params and not request.headers.get("hx-request"):
        # Imported here: the dashboards' pages build on this module.
        from flowdeck.web.dashboards import home_dashboard, home_page

        try:
            chosen = home_dashboard(request, svc)
            if chosen is not None:
                return home_page(request, svc, chosen)
        except FlowdeckError as exc:
            return error_page(request, exc)
    return dashboard(request, svc)


@router.get("/batches")
def dashboard(request: Request, svc: Svc) -> Response:
    """The batch dashboard (also at ``/`` unless this browser chose another home page)."""
    try:
        sel = parse_selection(request.query_params)
        target = request.headers.get("hx-target", "")
        fragment = (
            FRAGMENTS.get(target)
            if request.headers.get("hx-request")
            and not request.headers.get("hx-history-restore-request")
            else None
        )
        board = load_dashboard(svc, sel, with_list=fragment is None)
    except FlowdeckError as exc:
        return error_page(request, exc)
    pinned = board.pinned or sel
    context = {
        "board": board,
        "sel": sel,
        "pinned": pinned,
        "page_url": lambda n: pinned.url(page=n),
        "column_names": {key: heading for key, heading, _ in COLUMNS},
        "batch": board.batch,
        "columns": COLUMNS,
        "statuses": STATUSES,
        "windows": WINDOWS,
        "page_sizes": PAGE_SIZES,
        "dq_warning_rate": DQ_WARNING_RATE,
        "is_dq_warning": is_dq_warning,
        "nav": "batches",
        "oob": fragment is not None,
    }
    response = page(request, fragment or "dashboard.html", context)
    response.headers["Vary"] = "HX-Request, HX-Target"
    return response


@router.get("/runs/{run_id}")
def run_page(run_id: str, request: Request, svc: Svc) -> Response:
    try:
        run = svc.store.get_run(run_id)
        history = svc.store.list_pipeline_runs(run.project, run.pipeline, run.env, 50)
    except FlowdeckError as exc:
        return error_page(request, exc)
    chart = [
        {
            "run_id": r.run_id,
            "batch_id": r.batch_id,
            "status": r.status,
            "t": r.started_at or r.created_at,
            "duration_s": r.duration_s,
            "rows_read": r.rows_read,
            "rows_written": r.rows_written,
            "dq_errors": r.dq_errors,
        }
        for r in reversed(history)
    ]
    return page(
        request,
        "run.html",
        {
            "run": run_out(run),
            "record": run,
            "history": history,
            "chart_json": orjson.dumps(
                {"current": run.run_id, "runs": chart}, option=orjson.OPT_UTC_Z
            ).decode(),
            "dq_warning": is_dq_warning(run),
            "nav": "batches",
        },
    )


@router.get("/batches/{batch_id:batch}/dq")
def dq_view(
    batch_id: str,
    request: Request,
    svc: Svc,
    project: str | None = None,
    page_no: Annotated[str, Query(alias="page")] = "1",
    page_size: Annotated[str, Query()] = "50",
) -> Response:
    try:
        number, size = _positive("page", page_no), _positive("page_size", page_size)
        data = dq_page(svc, batch_id, project, number, size)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return page(
        request,
        "dq.html",
        {
            "data": data,
            "batch": data["batch"],
            "page_url": lambda n: (
                f"/batches/{quote(batch_id, safe='')}/dq?"
                + urlencode({"project": data["batch"]["project"], "page": n, "page_size": size})
            ),
            "nav": "batches",
        },
    )


@router.get("/trends")
def trends_page(
    request: Request,
    svc: Svc,
    since: str = "7d",
    env: str | None = None,
    project: str | None = None,
) -> Response:
    try:
        if since not in TREND_WINDOWS:
            raise InvalidInput([FieldProblem("since", "must be 7d or 30d")])
        data = trends_in(svc, since, None, env or None, project or None)
        envs = sorted({p.env for p in svc.store.list_pipelines(project=project or None)})
    except FlowdeckError as exc:
        return error_page(request, exc)
    days: list[dict[str, Any]] = data["days"]
    batches: list[dict[str, Any]] = data["batches"]
    processes = sum(d["processes"] for d in days)
    rows_read = sum(d["rows_read"] for d in days)
    return page(
        request,
        "trends.html",
        {
            "data": data,
            "days": days,
            "batches": batches,
            "since": since,
            "env": env or "",
            "project": project or "",
            "envs": envs,
            "windows": TREND_WINDOWS,
            "totals": {
                "batches": len(batches),
                "processes": processes,
                "failed": sum(d["failed"] for d in days),
                "success_rate": sum(d["succeeded"] for d in days) / processes
                if processes
                else None,
                "dq_error_rate": sum(d["dq_errors"] for d in days) / rows_read
                if rows_read
                else None,
            },
            "chart_json": orjson.dumps(
                {"days": days, "batches": batches}, option=orjson.OPT_UTC_Z
            ).decode(),
            "nav": "trends",
        },
    )


def _positive(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidInput(
            [FieldProblem(name, f"must be a whole number of 1 or more; got {raw!r}")]
        )
    return value
