"""The dashboards' pages: the list (create, import, delete, make one your home page) and a
dashboard (time range, refresh, live updates, and the grid editor; ``static/dashboards.js``).
The JSON twins are /api/v1/dashboards; each widget's data comes from
``POST /api/v1/dashboards/widget-data``.

The home page is chosen per browser: "Make this my home page" sets the ``flowdeck_home``
cookie, and ``/`` then shows that dashboard (see :func:`home_dashboard`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, get_args
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from flowdeck.api.services import Services, services
from flowdeck.dashboards.model import RANGES, REFRESH, parse_dashboard
from flowdeck.dashboards.store import DashboardRow, DashboardStore
from flowdeck.errors import FlowdeckError, NotFound, StoreUnavailable
from flowdeck.timeseries.batches import BATCH_METRICS, BATCH_TAGS
from flowdeck.timeseries.query import Aggregation
from flowdeck.timeseries.runs import RUN_METRICS, RUN_TAGS
from flowdeck.web.alerting import form
from flowdeck.web.pages import error_page, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

HOME_COOKIE: Final = "flowdeck_home"
HOME_MAX_AGE: Final = 400 * 86_400  # the longest a browser keeps a cookie
RANGE_NAMES: Final = {
    "1h": "Last hour",
    "6h": "Last 6 hours",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
}
REFRESH_NAMES: Final = {"off": "Off", "1s": "1 s", "5s": "5 s", "30s": "30 s", "1m": "1 min"}
assert set(RANGE_NAMES) == set(RANGES) and set(REFRESH_NAMES) == set(REFRESH)


def _db(svc: Services) -> DashboardStore:
    if svc.dashboards is None:
        raise StoreUnavailable("dashboards are not available on this store")
    return svc.dashboards


def home_dashboard(request: Request, svc: Services) -> DashboardRow | None:
    """The dashboard this browser chose as its home page, if it still exists."""
    chosen = request.cookies.get(HOME_COOKIE)
    if not chosen or svc.dashboards is None:
        return None
    try:
        return svc.dashboards.get_dashboard(chosen)
    except NotFound:
        return None


def home_page(request: Request, svc: Services, row: DashboardRow) -> Response:
    return board_page(request, row, _metric_names(svc), home=True)


@router.get("/dashboards")
def dashboards_page(request: Request, svc: Svc) -> Response:
    try:
        rows = _db(svc).list_dashboards()
    except FlowdeckError as exc:
        return error_page(request, exc)
    return page(
        request,
        "dashboards.html",
        {
            "rows": rows,
            "home": request.cookies.get(HOME_COOKIE),
            "range_names": RANGE_NAMES,
            "refresh_names": REFRESH_NAMES,
            "done": request.query_params.get("done", ""),
            "nav": "dashboards",
        },
    )


@router.get("/dashboards/{dashboard_id}")
def dashboard_page(dashboard_id: str, request: Request, svc: Svc) -> Response:
    try:
        row = _db(svc).get_dashboard(dashboard_id)
        names = _metric_names(svc)
    except FlowdeckError as exc:
        return error_page(request, exc)
    return board_page(request, row, names, home=request.cookies.get(HOME_COOKIE) == row.id)


def board_page(
    request: Request, row: DashboardRow, names: list[str], *, home: bool, nav: str = "dashboards"
) -> Response:
    # Stored specs were valid when saved; parsing again fills in defaults added since.
    board = parse_dashboard(dict(row.spec))
    spec = {"id": row.id, "version": row.version, **board.spec()}
    editor = {
        "metrics": names,
        "run_metrics": sorted(RUN_METRICS),
        "batch_metrics": sorted(BATCH_METRICS),
        "run_tags": list(RUN_TAGS),
        "batch_tags": list(BATCH_TAGS),
        "aggregations": list(get_args(Aggregation)),
    }
    return page(
        request,
        "dashboards_view.html",
        {
            "row": row,
            "board": board,
            "spec_json": _script_json(spec),
            "editor_json": _script_json(editor),
            "range_names": RANGE_NAMES,
            "refresh_names": REFRESH_NAMES,
            "home": home,
            "nav": nav,
        },
    )


def _metric_names(svc: Services) -> list[str]:
    from flowdeck.store.metrics_sql import MetricsSql

    if not isinstance(svc.store, MetricsSql):
        return []
    return [name for name, _ in svc.store.list_metric_names("default")]


def _script_json(value: Any) -> str:
    """JSON safe inside <script type="application/json">."""
    return orjson.dumps(value).decode().replace("</", "<\\/")


@router.post("/dashboards/new")
async def new_dashboard(request: Request, svc: Svc) -> Response:
    """The list page's "New dashboard": an empty one, opened in edit mode."""
    data = await form(request)
    title = data.get("title", "").strip() or "New dashboard"
    try:
        spec = parse_dashboard({"title": title[:200]}).spec()
        db = _db(svc)
        row = await svc.writer.run_call(lambda: db.create_dashboard(spec, svc.clock()))
    except FlowdeckError as exc:
        return error_page(request, exc)
    return RedirectResponse(f"/dashboards/{quote(row.id)}?edit=1", status_code=303)


@router.post("/dashboards/{dashboard_id}/delete")
async def delete_dashboard(dashboard_id: str, request: Request, svc: Svc) -> Response:
    try:
        db = _db(svc)
        row = db.get_dashboard(dashboard_id)
        await svc.writer.run_call(lambda: db.delete_dashboard(dashboard_id))
    except FlowdeckError as exc:
        return error_page(request, exc)
    response = RedirectResponse(f"/dashboards?done={quote('Deleted ' + row.title)}", 303)
    if request.cookies.get(HOME_COOKIE) == dashboard_id:
        response.delete_cookie(HOME_COOKIE, path="/")
    return response


@router.post("/dashboards/{dashboard_id}/home")
async def make_home(dashboard_id: str, request: Request, svc: Svc) -> Response:
    """Make this dashboard the browser's home page (``/``), or stop (``clear=1``)."""
    data = await form(request)
    try:
        row = _db(svc).get_dashboard(dashboard_id)
    except FlowdeckError as exc:
        return error_page(request, exc)
    back = data.get("back", "")
    target = back if back.startswith("/") and not back.startswith("//") else "/dashboards"
    response = RedirectResponse(target, status_code=303)
    if data.get("clear"):
        response.delete_cookie(HOME_COOKIE, path="/")
    else:
        response.set_cookie(
            HOME_COOKIE, row.id, max_age=HOME_MAX_AGE, path="/", httponly=True, samesite="lax"
        )
    return response
