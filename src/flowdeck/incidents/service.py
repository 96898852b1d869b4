"""Incidents at work: every few seconds, read the signals of every declared flow and the
state of every SLO, let the detector move the incidents, write what changed (on the writer
thread), tell live pages, and give the alert engine its facts.

Settings (environment; durations in seconds):

- ``FLOWDECK_INCIDENT_TICK_SECONDS`` (5): how often detection runs (0: it does not);
- ``FLOWDECK_INCIDENT_HOLD_SECONDS`` (120): how long a condition must hold to open one;
- ``FLOWDECK_INCIDENT_CALM_SECONDS`` (300): how long recovered before one closes;
- ``FLOWDECK_INCIDENT_SILENT_SECONDS`` (300): a stage without points this long is stalled;
- ``FLOWDECK_INCIDENT_WINDOW_SECONDS`` (60): the window the stage signals are read over.

What is pending (seen, not yet held for the hold time) is kept in memory: after a restart a
condition's hold starts again, except where the signals date its start (a stage silent since
its last point, an SLO failing since a known time).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from flowdeck.alerts.engine import IncidentFacts
from flowdeck.events import EventBus
from flowdeck.flows.store import FlowStore
from flowdeck.incidents.detect import (
    DetectOptions,
    FlowSignals,
    Key,
    Outcome,
    Pending,
    SloSignal,
    detect,
)
from flowdeck.incidents.model import Incident
from flowdeck.incidents.signals import flow_signals, slo_signals
from flowdeck.incidents.store import IncidentStore
from flowdeck.ingest.writer import Clock, Writer
from flowdeck.slo.service import SloService
from flowdeck.store.sql import SqlStore

log = logging.getLogger("flowdeck.incidents")

# Closed incidents the alert engine still sees (open=False), so their alerts resolve.
FACTS_KEEP_S: Final = 3_600.0


def _seconds_env(name: str, default: float, *, zero: bool = False) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or (value == 0 and not zero) or value != value:
        rule = "0 or more" if zero else "more than 0"
        raise SystemExit(f"{name} must be {rule} seconds, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class IncidentOptions:
    tick_s: float = 5.0
    window_s: int = 60
    lookback_s: float = 3_600.0  # how far back a stage's last point is looked for
    detect: DetectOptions = field(default_factory=DetectOptions)

    @classmethod
    def from_env(cls) -> IncidentOptions:
        base, defaults = DetectOptions(), cls()
        return cls(
            tick_s=_seconds_env("FLOWDECK_INCIDENT_TICK_SECONDS", defaults.tick_s, zero=True),
            window_s=round(_seconds_env("FLOWDECK_INCIDENT_WINDOW_SECONDS", defaults.window_s)),
            detect=DetectOptions(
                hold_s=_seconds_env("FLOWDECK_INCIDENT_HOLD_SECONDS", base.hold_s),
                calm_s=_seconds_env("FLOWDECK_INCIDENT_CALM_SECONDS", base.calm_s),
                silent_s=_seconds_env("FLOWDECK_INCIDENT_SILENT_SECONDS", base.silent_s),
            ),
        )


class IncidentService:
    def __init__(
        self,
        store: SqlStore,
        *,
        clock: Clock,
        flows: FlowStore | None = None,
        slos: SloService | None = None,
        options: IncidentOptions | None = None,
    ) -> None:
        self.db = IncidentStore(store)
        self.metrics = store
        self.flows = flows
        self.slos = slos
        self.clock = clock
        self.options = options or IncidentOptions()
        self.pending: Mapping[Key, Pending] = {}
        # Told what opened, closed or has news (an alert-stream item each); set by the app.
        self.announce: Callable[[tuple[dict[str, Any], ...]], None] | None = None
        # Called after incidents opened or closed (the app wakes the alert engine).
        self.on_change: Callable[[], None] | None = None

    # -- reads -----------------------------------------------------------------------------
    def list_incidents(self, state: str = "all", **filters: Any) -> list[Incident]:
        return self.db.list_incidents(state, **filters)

    def get_incident(self, incident_id: str) -> Incident:
        """NotFound for an unknown id."""
        return self.db.get_incident(incident_id)

    def declared_flows(self) -> set[tuple[str, str]]:
        """(project, pipeline) of every declared flow."""
        if self.flows is None:
            return set()
        return {(f.project, f.pipeline) for f in self.flows.list()}

    def facts(self, now: datetime) -> list[IncidentFacts]:
        """The open incidents, and those closed within the last hour (``open`` False), for
        the alert engine's ``incident`` rules."""
        return [
            IncidentFacts(
                project=inc.project,
                incident_id=inc.id,
                pipeline=inc.pipeline,
                kind=inc.kind,
                severity=inc.severity,
                open=inc.is_open,
                summary=inc.summary,
                opened_at=inc.opened_at,
                stage=inc.stage,
            )
            for inc in self.db.recent(now - timedelta(seconds=FACTS_KEEP_S))
        ]

    def signals(self, now: datetime) -> tuple[list[FlowSignals], list[SloSignal]]:
        """What the detector needs, read from the store (any thread)."""
        flows: list[FlowSignals] = []
        if self.flows is not None:
            for spec in self.flows.list():
                if not spec.stages:
                    continue
                # A failure fails the whole tick: a flow left out would count as undeclared.
                flows.append(
                    flow_signals(
                        self.metrics, spec, now, self.options.window_s, self.options.lookback_s
                    )
                )
        slos = slo_signals(self.slos.states(now)) if self.slos is not None else []
        return flows, slos

    # -- one tick ----------------------------------------------------------------------------
    def apply(
        self, flows: Sequence[FlowSignals], slos: Sequence[SloSignal], now: datetime
    ) -> Outcome:
        """Detect and write, in one transaction (call on the writer thread)."""
        pending = self.pending

        def decide(open_incidents: list[Incident]) -> tuple[Outcome, Sequence[Incident]]:
            out = detect(flows, slos, open_incidents, pending, now, self.options.detect)
            return out, out.changed

        out = self.db.advance(decide)
        self.pending = out.pending
        return out

    async def tick(self, writer: Writer) -> Outcome:
        now = self.clock()
        flows, slos = await asyncio.to_thread(self.signals, now)
        # A dry run first, outside the writer: most ticks change nothing (no flow declared,
        # nothing pending or open), and then take no write transaction (nor, on
        # PostgreSQL, the write lock). Only a change is decided again under the lock.
        open_now = await asyncio.to_thread(self.db.open_incidents)
        dry = detect(flows, slos, open_now, self.pending, now, self.options.detect)
        if not dry.changed:
            self.pending = dry.pending
            out = dry
        else:
            out = await writer.run_call(lambda: self.apply(flows, slos, now))
        self._tell(out)
        return out

    def _tell(self, out: Outcome) -> None:
        items = [_item(i, "opened") for i in out.opened]
        items += [_item(i, "closed") for i in out.closed]
        items += [_item(i, "updated") for i in out.updated if i.id in out.news]
        for inc in out.opened:
            log.warning("incident %s opened: %s", inc.id, inc.summary)
        for inc in out.closed:
            log.info("incident %s closed: %s", inc.id, inc.title)
        if items and self.announce is not None:
            self.announce(tuple(items))
        if (out.opened or out.closed) and self.on_change is not None:
            self.on_change()

    async def run(self, writer: Writer) -> None:
        """Detect every ``tick_s`` until cancelled; a failed tick is logged and retried."""
        while True:
            try:
                await self.tick(writer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("incident detection failed; trying again next tick")
            await asyncio.sleep(self.options.tick_s)


def _item(inc: Incident, what: str) -> dict[str, Any]:
    # An item of the stream's "alert" event: pages listening for alerts refresh on it.
    return {
        "what": "incident",
        "change": what,
        "id": inc.id,
        "project": inc.project,
        "pipeline": inc.pipeline,
        "kind": inc.kind,
        "severity": inc.severity,
        "state": inc.state,
        "title": inc.title,
    }


@asynccontextmanager
async def running(
    store: SqlStore,
    writer: Writer,
    bus: EventBus,
    clock: Clock,
    flows: FlowStore | None,
    slos: SloService | None,
    options: IncidentOptions | None = None,
) -> AsyncIterator[IncidentService]:
    """Incidents for the life of the app: detection every ``tick_s`` in the background (none
    when it is 0), news on the bus for live pages."""
    service = IncidentService(
        store, clock=clock, flows=flows, slos=slos, options=options or IncidentOptions.from_env()
    )
    service.announce = bus.publish_alerts
    if service.options.tick_s <= 0:
        yield service
        return
    task = asyncio.create_task(service.run(writer), name="flowdeck-incidents")
    try:
        yield service
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
