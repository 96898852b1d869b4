"""The web UI: server-rendered pages (Jinja2) made live with htmx and the change stream."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from flowdeck.web import alerting, dashboards, explorer, runbook, sources
from flowdeck.web.live import LiveFrom
from flowdeck.web.pages import router
from flowdeck.web.templating import STATIC

log = logging.getLogger("flowdeck")

VENDOR_FILES = ("htmx.min.js", "echarts.min.js", "gridstack-all.js", "gridstack.min.css")


def install(app: FastAPI) -> None:
    """Add the pages and their static files to ``app``."""
    missing = [name for name in VENDOR_FILES if not (STATIC / "vendor" / name).is_file()]
    if missing:
        log.warning(
            "dashboard front-end files missing (%s): run scripts/build-ui", ", ".join(missing)
        )
    app.include_router(router)
    app.include_router(alerting.router)
    app.include_router(sources.router)
    app.include_router(explorer.router)
    app.include_router(dashboards.router)
    app.include_router(runbook.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(LiveFrom)
