"""The sources pages: every pipeline (or label value) with its freshness and a sparkline of
a chosen field, and each pipeline's and each label value's own page with the full trends.
Twins: /api/v1/sources, /api/v1/sources/{pipeline} and /api/v1/sources/by/{label}/{value}."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from flowdeck.api.services import Services, services
from flowdeck.api.sources import source_group_in, source_in, sources_in
from flowdeck.errors import FlowdeckError
from flowdeck.web.pages import error_page, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

SPARK_W, SPARK_H = 120, 28


def sparkline(points: list[dict[str, Any]]) -> dict[str, Any]:
    """An inline SVG's polyline and failure marks for a trend (None values leave gaps),
    and the words a screen reader gets instead."""
    values = [p["value"] for p in points if p["value"] is not None]
    out: dict[str, Any] = {"w": SPARK_W, "h": SPARK_H, "lines": [], "fails": []}
    if not points:
        return out
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    span = (high - low) or 1.0
    step = SPARK_W / max(len(points) - 1, 1)
    line: list[str] = []
    for i, p in enumerate(points):
        x = round(i * step if len(points) > 1 else SPARK_W / 2, 1)
        if p["value"] is None:
            y = float(SPARK_H - 3)
            if line:
                out["lines"].append(" ".join(line))
                line = []
        else:
            y = round(SPARK_H - 3 - (p["value"] - low) / span * (SPARK_H - 6), 1)
            line.append(f"{x},{y}")
        if p["status"] == "FAILED":
            out["fails"].append((x, y))
    if line:
        out["lines"].append(" ".join(line))
    out["low"], out["high"] = (low, high) if values else (None, None)
    return out


def _label(by: str) -> str:
    return by[len("label:") :] if by.startswith("label:") else by


def _open_alerts(svc: Services, pipelines: set[str], source: dict[str, Any]) -> list[Any]:
    """The pending and firing alerts of these pipelines in the source's project and env."""
    if svc.alerts is None:
        return []
    return [
        a
        for a in svc.alerts.db.alerts(states=("pending", "firing"))
        if a.subject.get("pipeline") in pipelines
        and a.subject.get("env") == source["env"]
        and a.subject.get("project") == source["project"]
    ]


def _chart_page(
    request: Request, svc: Services, template: str, context: dict[str, Any], chart: dict[str, Any]
) -> Response:
    """A source's own page: its context, the clock and its chart's data as JSON."""
    return page(
        request,
        template,
        {
            **context,
            "now": svc.clock(),
            "chart_json": orjson.dumps(chart, option=orjson.OPT_UTC_Z).decode(),
            "nav": "sources",
        },
    )


@router.get("/sources")
def sources_page(
    request: Request,
    svc: Svc,
    by: str = "pipeline",
    field: str = "rows_written",
    env: str = "",
    project: str = "",
) -> Response:
    try:
        data = sources_in(
            svc, by or "pipeline", field or "rows_written", project or None, env or None
        )
        envs = sorted({p.env for p in svc.store.list_pipelines(project=project or None)})
    except FlowdeckError as exc:
        return error_page(request, exc)
    for item in data["items"]:
        item["spark"] = sparkline(item["trend"])
    return page(
        request,
        "sources.html",
        {
            "data": data,
            "by": data["by"],
            "field": data["field"],
            "env": env,
            "project": project,
            "envs": envs,
            "now": svc.clock(),
            "nav": "sources",
        },
    )


@router.get("/sources/{pipeline}")
def source_page(
    pipeline: str,
    request: Request,
    svc: Svc,
    field: str = "rows_written",
    env: str = "",
    project: str = "",
) -> Response:
    try:
        data = source_in(svc, pipeline, field or "rows_written", project or None, env or None)
        alerts = _open_alerts(svc, {pipeline}, data)
    except FlowdeckError as exc:
        return error_page(request, exc)
    chart = {
        "field": data["field"],
        "runs": [
            {
                "run_id": h["run_id"],
                "batch_id": h["batch_id"],
                "status": h["status"],
                "t": h["t"],
                "value": h["value"],
                "duration_s": h["duration_s"],
            }
            for h in data["history"]
        ],
    }
    return _chart_page(request, svc, "source.html", {"s": data, "alerts": alerts}, chart)


@router.get("/sources/by/{label}/{value:path}")
def source_group_page(
    label: str,
    value: str,
    request: Request,
    svc: Svc,
    field: str = "rows_written",
    env: str = "",
    project: str = "",
) -> Response:
    try:
        data = source_group_in(
            svc, label, value, field or "rows_written", project or None, env or None
        )
        alerts = _open_alerts(svc, set(data["members"]), data)
    except FlowdeckError as exc:
        return error_page(request, exc)
    chart = {
        "field": data["field"],
        "runs": [{k: h[k] for k in ("batch_id", "status", "t", "value")} for h in data["history"]],
    }
    return _chart_page(request, svc, "source_group.html", {"g": data, "alerts": alerts}, chart)
