"""The ASGI application: routers, error mapping, and the services' lifetime."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from flowdeck import __version__, web
from flowdeck.alerts.service import running as alerting
from flowdeck.api import alerts as alerts_api
from flowdeck.api import batches, errors, health, pipelines, runs, stream
from flowdeck.api import dashboards as dashboards_api
from flowdeck.api import flows as flows_api
from flowdeck.api import incidents as incidents_api
from flowdeck.api import lineage as lineage_api
from flowdeck.api import metric_points as metric_points_api
from flowdeck.api import metrics as metrics_api
from flowdeck.api import quality as quality_api
from flowdeck.api import review as review_api
from flowdeck.api import slos as slos_api
from flowdeck.api import sources as sources_api
from flowdeck.api import trends as trends_api
from flowdeck.api import ws as ws_api
from flowdeck.api.fastpath import IngestFront
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services
from flowdeck.dashboards.store import DashboardStore
from flowdeck.dashboards.templates import create_templates
from flowdeck.events import EventBus
from flowdeck.flows.store import FlowStore
from flowdeck.incidents.service import running as incidents_running
from flowdeck.ingest.writer import Clock, Writer, utc_now
from flowdeck.models import RunIn
from flowdeck.review.service import review_service
from flowdeck.settings import Settings
from flowdeck.slo.service import SloService
from flowdeck.store import Store, open_store
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.store.sql import SqlStore
from flowdeck.timeseries.cells import keeping_cells
from flowdeck.timeseries.compaction import compacting
from flowdeck.web import flows as flows_web
from flowdeck.web import incidents as incidents_web
from flowdeck.web import review as review_web
from flowdeck.web import slos as slos_web

log = logging.getLogger("flowdeck")

# Something that runs beside the server for its whole life (the demo's simulator, …).
Companion = Callable[[Services], AbstractAsyncContextManager[Any]]

DESCRIPTION = """
flowdeck keeps the runs your pipelines report and answers the questions of the batch
dashboard. Errors come as `{"message": ..., "detail": [{"loc", "msg", "type"}]}`.
"""


def make_bus(store: Store) -> EventBus:
    """In-process for DuckDB; across replicas (LISTEN/NOTIFY) for PostgreSQL."""
    if store.backend == "postgresql":
        from flowdeck.pg_events import PostgresEventBus

        return PostgresEventBus(store.url)
    return EventBus()


def create_app(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    companions: Sequence[Companion] = (),
    database_file: str = "flowdeck.duckdb",
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url(database_file)
        store = open_store(url)
        version = store.migrate()
        log.info("database %s (schema version %d)", url, version)
        dashboards = DashboardStore(store) if isinstance(store, SqlStore) else None
        if dashboards is not None:
            # Before the writer starts: nothing else writes yet.
            created = create_templates(dashboards, clock())
            if created:
                log.info("dashboards created from templates: %s", ", ".join(created))
        bus = make_bus(store)
        bus.bind(asyncio.get_running_loop())
        bus.start()
        writer = Writer(
            store,
            bus,
            max_group_runs=settings.max_group_runs,
            max_linger=settings.group_linger_ms / 1000,
            clock=clock,
        )
        writer.start()
        svc = Services(
            settings=settings,
            store=store,
            writer=writer,
            bus=bus,
            clock=clock,
            dashboards=dashboards,
            flows=FlowStore(store) if isinstance(store, SqlStore) else None,
        )
        svc.review = review_service(store, writer, bus, clock, settings.metric_max_series)
        svc.slos = SloService(store) if isinstance(store, SqlStore) else None
        app.state.services = svc
        try:
            async with AsyncExitStack() as stack:
                svc.alerts = await stack.enter_async_context(alerting(settings, store, bus, clock))
                if svc.alerts is not None and svc.slos is not None:
                    svc.alerts.slo_facts = svc.slos.facts  # slo_burn_rate rules
                if isinstance(store, SqlStore):
                    svc.incidents = await stack.enter_async_context(
                        incidents_running(store, writer, bus, clock, svc.flows, svc.slos)
                    )
                    if svc.alerts is not None:
                        svc.alerts.incident_facts = svc.incidents.facts  # incident rules
                        svc.incidents.on_change = svc.alerts.kick
                if isinstance(store, MetricsSql):
                    svc.metric_compactor = await stack.enter_async_context(
                        compacting(
                            store,
                            writer,
                            settings.metric_retention_days,
                            clock,
                            settings.metric_compaction_seconds,
                        )
                    )
                    svc.metric_cells = await stack.enter_async_context(
                        keeping_cells(store, writer, settings.metric_cells_seconds)
                    )
                for companion in companions:
                    await stack.enter_async_context(companion(svc))
                yield
        finally:
            await asyncio.to_thread(writer.stop)
            await asyncio.to_thread(bus.stop)
            store.close()

    app = IngestFront(
        title="flowdeck",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSON,
        docs_url=None,  # served by flowdeck.web from its own copy of Swagger UI
        redoc_url=None,
    )
    errors.install(app)
    for module in (runs, batches, pipelines, stream):
        app.include_router(module.router, prefix="/api/v1")
    app.include_router(lineage_api.router, prefix="/api/v1")
    app.include_router(metrics_api.router)
    app.include_router(metric_points_api.router, prefix="/api/v1")
    app.include_router(ws_api.router, prefix="/api/v1")
    app.include_router(quality_api.router, prefix="/api/v1")
    app.include_router(trends_api.router, prefix="/api/v1")
    app.include_router(sources_api.router, prefix="/api/v1")
    app.include_router(alerts_api.router, prefix="/api/v1")
    app.include_router(dashboards_api.router, prefix="/api/v1")
    app.include_router(flows_api.router, prefix="/api/v1")
    app.include_router(flows_web.router)
    app.include_router(review_api.router, prefix="/api/v1")
    app.include_router(review_web.router)
    app.include_router(slos_api.router, prefix="/api/v1")
    app.include_router(slos_web.router)
    app.include_router(incidents_api.router, prefix="/api/v1")
    app.include_router(incidents_web.router)
    app.include_router(alerts_api.runbook_router)
    app.include_router(health.router)
    # The pages; GET / is the dashboard for browsers and the JSON index for API clients.
    web.install(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            run_in = TypeAdapter(RunIn).json_schema(ref_template="#/components/schemas/{model}")
            components.update(run_in.pop("$defs", {}))
            components["RunIn"] = run_in
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
