"""The web UI: server-rendered pages (Jinja2) made live with htmx and the change stream."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from flowdeck.web import alerting, dashboards, explorer, runbook, sources
from flowdeck.web.live import LiveFrom
from flowdeck.web.pages import router
from flowdeck.web.templating import STATIC, static

log = logging.getLogger("flowdeck")

VENDOR_FILES = (
    "htmx.min.js",
    "echarts.min.js",
    "gridstack-all.js",
    "gridstack.min.css",
    "swagger-ui-bundle.js",
    "swagger-ui.css",
)


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

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        """The interactive API reference, from this server's own copy of Swagger UI (no
        CDN: flowdeck is often run where the internet is out of reach)."""
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="flowdeck API",
            swagger_js_url=static("vendor/swagger-ui-bundle.js"),
            swagger_css_url=static("vendor/swagger-ui.css"),
            swagger_favicon_url="data:,",
        )

    app.add_middleware(LiveFrom)
