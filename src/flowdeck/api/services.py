"""What the routers need, kept on ``app.state.services`` for the life of the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from flowdeck.alerts.service import AlertService
from flowdeck.dashboards.store import DashboardStore
from flowdeck.events import EventBus
from flowdeck.flows.store import FlowStore
from flowdeck.ingest.writer import Clock, Writer
from flowdeck.settings import Settings
from flowdeck.slo.service import SloService
from flowdeck.store import Store
from flowdeck.timeseries.cells import CellKeeper
from flowdeck.timeseries.compaction import Compactor

if TYPE_CHECKING:
    from flowdeck.incidents.service import IncidentService
    from flowdeck.review.service import ReviewService


@dataclass
class Services:
    settings: Settings
    store: Store
    writer: Writer
    bus: EventBus
    clock: Clock
    alerts: AlertService | None = None  # None while alerting is not running
    metric_compactor: Compactor | None = None  # metrics retention, while running
    metric_cells: CellKeeper | None = None  # kept percentiles, while running
    dashboards: DashboardStore | None = None
    flows: FlowStore | None = None  # flow declarations (flowdeck.flows)
    review: ReviewService | None = None  # human review (flowdeck.review)
    slos: SloService | None = None  # SLOs (flowdeck.slo)
    incidents: IncidentService | None = None  # incidents (flowdeck.incidents), while running
    # What must stop while the server still listens (api/server.py): a companion that
    # reaches the server over HTTP.
    stopping: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def services(request: Request) -> Services:
    # async: FastAPI would run a plain function in its thread pool, a thread hop per request.
    svc: Services = request.app.state.services
    return svc
