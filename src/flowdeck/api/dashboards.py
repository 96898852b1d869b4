"""Dashboards API: CRUD at /dashboards, JSON export and import, and the data of one widget
(``POST /dashboards/widget-data``, what the dashboard page asks for each widget). The rules
live in ``flowdeck.dashboards``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.dashboards.data import widget_data
from flowdeck.dashboards.model import DashboardIn, parse_dashboard, parse_time_range, parse_widget
from flowdeck.dashboards.store import DashboardRow, DashboardStore
from flowdeck.errors import FieldProblem, InvalidInput

router = APIRouter(tags=["dashboards"])
Svc = Annotated[Services, Depends(services)]
MAX_BODY: Final = 1024 * 1024
EXPORT_FORMAT: Final = 1
# Keys of an export (or of a GET answer) that an import or a PUT leaves aside.
_SERVER_KEYS: Final = ("flowdeck_dashboard", "id", "created_at", "updated_at", "exported_at")

_BODY_DOC: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DashboardIn.model_json_schema()}},
    }
}


def dashboard_store(svc: Svc) -> DashboardStore:
    if svc.dashboards is None:
        raise ApiError(503, "dashboards are not available")
    return svc.dashboards


Db = Annotated[DashboardStore, Depends(dashboard_store)]


async def _json_body(request: Request) -> Any:
    return await read_json_value(request, MAX_BODY)


def summary_out(row: DashboardRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "description": row.spec.get("description", ""),
        "time_range": row.spec.get("time_range"),
        "refresh": row.spec.get("refresh"),
        "widgets": len(row.spec.get("widgets", [])),
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "url": f"/dashboards/{row.id}",
    }


def export_doc(row: DashboardRow, now: Any) -> dict[str, Any]:
    return {"flowdeck_dashboard": EXPORT_FORMAT, "exported_at": now, **row.spec}


def filename(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "dashboard"
    return f"{slug[:60]}.dashboard.json"


@router.get("/dashboards", summary="Dashboards, by title")
def list_dashboards(db: Db) -> Response:
    return JSON({"items": [summary_out(r) for r in db.list_dashboards()]})


@router.post(
    "/dashboards",
    summary="Create a dashboard",
    description="201 with the dashboard and its new id. 422 names every broken rule "
    "(`widgets[2].type: must be one of …`); nothing is written then.",
    openapi_extra=_BODY_DOC,
    status_code=201,
)
async def create_dashboard(request: Request, db: Db, svc: Svc) -> Response:
    board = parse_dashboard(await _json_body(request))
    if board.version is not None:
        raise InvalidInput([FieldProblem("version", "is set by the server on create")])
    spec = board.spec()
    row = await svc.writer.run_call(lambda: db.create_dashboard(spec, svc.clock()))
    return JSON(row.out(), status_code=201)


@router.get("/dashboards/{dashboard_id}", summary="One dashboard")
def get_dashboard(dashboard_id: str, db: Db) -> Response:
    return JSON(db.get_dashboard(dashboard_id).out())


@router.put(
    "/dashboards/{dashboard_id}",
    summary="Replace a dashboard",
    description="With `version` (the one read), 409 when the dashboard was saved since; "
    "without it, the last write wins.",
    openapi_extra=_BODY_DOC,
)
async def put_dashboard(dashboard_id: str, request: Request, db: Db, svc: Svc) -> Response:
    data = await _json_body(request)
    if isinstance(data, dict):
        # What GET answered may be sent back as it is.
        data = {k: v for k, v in data.items() if k not in _SERVER_KEYS}
    board = parse_dashboard(data)
    spec = board.spec()
    row = await svc.writer.run_call(
        lambda: db.update_dashboard(dashboard_id, spec, svc.clock(), board.version)
    )
    return JSON(row.out())


@router.delete("/dashboards/{dashboard_id}", summary="Delete a dashboard", status_code=204)
async def delete_dashboard(dashboard_id: str, db: Db, svc: Svc) -> Response:
    await svc.writer.run_call(lambda: db.delete_dashboard(dashboard_id))
    return Response(status_code=204)


@router.get("/dashboards/{dashboard_id}/export", summary="A dashboard as a JSON file")
def export_dashboard(dashboard_id: str, db: Db, svc: Svc) -> Response:
    row = db.get_dashboard(dashboard_id)
    return JSON(
        export_doc(row, svc.clock()),
        headers={"Content-Disposition": f'attachment; filename="{filename(row.title)}"'},
    )


@router.post(
    "/dashboards/import",
    summary="Import a dashboard exported before",
    description="Takes what /export gives (or any dashboard body) and creates a new "
    "dashboard with a new id; 201.",
    status_code=201,
)
async def import_dashboard(request: Request, db: Db, svc: Svc) -> Response:
    spec = await run_in_threadpool(import_spec, await _json_body(request))
    row = await svc.writer.run_call(lambda: db.create_dashboard(spec, svc.clock()))
    return JSON(row.out(), status_code=201)


def import_spec(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    fmt = data.get("flowdeck_dashboard", EXPORT_FORMAT)
    if fmt != EXPORT_FORMAT:
        raise InvalidInput(
            [FieldProblem("flowdeck_dashboard", f"must be {EXPORT_FORMAT}; got {fmt!r}")]
        )
    body = {k: v for k, v in data.items() if k not in (*_SERVER_KEYS, "version")}
    return parse_dashboard(body).spec()


@router.post(
    "/dashboards/widget-data",
    summary="The data of one widget over a time range",
    description='Body `{"widget": {...}, "time_range": {"last": "24h"}}`: the widget need '
    "not be saved (the editor previews with it). Metric widgets answer the metrics query "
    "API's result (`result`) and, for pie, gauge, stat and table, one value per series "
    "(`values`); `alerts` answers `items`; `batch_status` answers `batch`.",
)
async def post_widget_data(request: Request, svc: Svc) -> Response:
    data = await _json_body(request)
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    unknown = sorted(set(data) - {"widget", "time_range"})
    if unknown:
        raise InvalidInput([FieldProblem(unknown[0], "is not a known field")])
    widget = parse_widget(data.get("widget"))
    time_range = parse_time_range(data.get("time_range", {"last": "24h"}))
    return JSON(await run_in_threadpool(widget_data, svc, widget, time_range))
