"""Plays the streaming pipeline of ``stream.py`` into a running flowdeck, the way a real
pipeline would: only through the public API.

- metric points (``flow.*``, see docs/demo-simulator.md) with the SDK client
  (``flowdeck.sdk.Client``: counter, gauge, histogram, batched in the background);
- the flow declaration (``PUT /api/v1/flows/market_signals``), the SLO definitions
  (``PUT /api/v1/slos/{name}``) and review samples (``POST /api/v1/review/samples``) over HTTP.

An endpoint that is not there (404/405), refuses the body (4xx) or cannot be reached is logged
once and tried again later; the metrics keep flowing whatever happens to the rest.

At start the driver backfills the last ``backfill`` of points (timestamps in the past), so the
pages have history at once, then steps the model every ``tick_s`` real seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from flowdeck.api.app import Companion
from flowdeck.api.services import Services
from flowdeck.sdk import Client
from flowdeck.simulate.stream import (
    DAY_S,
    DEFAULT_CONFIG,
    Degradation,
    Spike,
    StreamConfig,
    StreamModel,
    Tick,
    review_eligible,
)

log = logging.getLogger("flowdeck.demo.stream")

Clock = Callable[[], datetime]
BACKFILL: Final = timedelta(hours=2)
BACKFILL_TICK_S: Final = 10.0
REVIEW_BACKFILL: Final = timedelta(minutes=15)  # older samples would only swamp the queue
TICK_S: Final = 2.0
RETRY_S: Final = 30.0
REVIEW_PATH: Final = "/api/v1/review/samples"
REVIEW_ROUTE: Final = f"POST {REVIEW_PATH}"
MAX_REVIEW_SAMPLES: Final = 1000  # per request, flowdeck's limit
OPENING_TIME_OF_DAY: Final = 8.5 * 3600  # the live part opens on a weekday morning


def flow_declaration(config: StreamConfig) -> dict[str, Any]:
    """The body of ``PUT /api/v1/flows/{pipeline}``."""
    return {
        "project": config.project,
        "title": config.title,
        "description": config.description,
        "stages": [
            {
                "name": s.name,
                "queue_capacity": s.queue_capacity,
                "capacity_per_s": s.capacity_per_s,
            }
            for s in config.stages
        ],
        "signals": list(config.signals),
        "review_rate": config.review_rate,
    }


def slo_definitions(config: StreamConfig) -> dict[str, dict[str, Any]]:
    """The demo's SLOs by name: the stream's latency and throughput, and two of the batch
    estate's pipelines (success rate, freshness)."""
    p = config.pipeline
    return {
        f"{p}-latency": {
            "project": config.project,
            "pipeline": p,
            "kind": "latency",
            "objective": 95.0,
            "threshold_ms": 2000,
            "description": "95 % of events are stored within 2 s of arriving",
        },
        f"{p}-throughput": {
            "project": config.project,
            "pipeline": p,
            "kind": "throughput",
            "objective": 99.0,
            "min_events": 500,
            "cycle": "1m",
            "description": "at least 500 events stored every minute, day and night",
        },
        "fact-sales-success": {
            "project": config.project,
            "pipeline": "fact_sales",
            "env": "prod",
            "kind": "success_rate",
            # The estate's fact_sales fails about one night in seven: a budget in use.
            "objective": 80.0,
            "description": "the nightly sales fact load succeeds",
        },
        "category-mart-freshness": {
            "project": config.project,
            "pipeline": "mart_category_performance",
            "env": "prod",
            "kind": "freshness",
            "objective": 97.0,
            "max_age": "48h",
            "description": "category performance is never more than two days old",
        },
    }


# -- HTTP calls that tolerate what is not there yet ----------------------------------------------
@dataclass
class _Route:
    retry_at: float = 0.0  # monotonic time before which the route is not tried again
    trouble: str | None = None  # what went wrong last (logged once)


class Api:
    """JSON calls to flowdeck with the standard library (as the SDK does). A call that fails
    is logged once per route and refused for ``retry_s`` seconds."""

    def __init__(
        self,
        base: str,
        *,
        timeout: float = 5.0,
        retry_s: float = RETRY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.retry_s = retry_s
        self.monotonic = monotonic
        self._routes: dict[str, _Route] = {}

    def due(self, route: str) -> bool:
        state = self._routes.get(route)
        return state is None or self.monotonic() >= state.retry_at

    def call(self, method: str, path: str, body: Any, route: str | None = None) -> bool:
        """True when flowdeck took the body (2xx)."""
        route = route or f"{method} {path}"
        state = self._routes.setdefault(route, _Route())
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body, default=str).encode(),
            method=method,
            headers={"Content-Type": "application/json", "User-Agent": "flowdeck-demo"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            if exc.code in (404, 405):
                trouble = f"not there yet (HTTP {exc.code}); trying again every {self.retry_s:g} s"
            else:
                trouble = f"refused with HTTP {exc.code}: {detail}"
            return self._failed(route, state, trouble)
        except (OSError, TimeoutError) as exc:
            return self._failed(route, state, f"unreachable ({exc}); trying again")
        if state.trouble is not None:
            log.info("demo stream: %s works now", route)
        state.trouble = None
        state.retry_at = 0.0
        return True

    def _failed(self, route: str, state: _Route, trouble: str) -> bool:
        if state.trouble is None:
            log.warning("demo stream: %s %s", route, trouble)
        state.trouble = trouble
        state.retry_at = self.monotonic() + self.retry_s
        return False


# -- the driver ------------------------------------------------------------------------------
class StreamDriver:
    """Runs the model against the flowdeck at ``url`` until :meth:`stop`. ``speed`` is how
    many scenario seconds (time of day, spikes, degradations) pass per real second."""

    def __init__(
        self,
        url: str,
        *,
        seed: int = 7,
        speed: float = 10.0,
        clock: Clock,
        config: StreamConfig = DEFAULT_CONFIG,
        backfill: timedelta = BACKFILL,
        tick_s: float = TICK_S,
        retry_s: float = RETRY_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.seed = seed
        self.speed = speed
        self.clock = clock
        self.config = config
        self.backfill = backfill
        self.tick_s = tick_s
        self.api = Api(self.url, retry_s=retry_s)
        self.ticks = 0  # reported so far
        self.events_reported = 0  # flow.events sent, over all signals
        self.review_offered = 0  # review samples flowdeck took
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: dict[str, tuple[str, str, dict[str, Any]]] = {}
        self._spool_dir = ""
        self.model: StreamModel | None = None
        self._samples: list[dict[str, Any]] = []  # for review, not sent yet
        self._seen: set[Spike | Degradation] = set()  # in effect at the last tick (logged)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="flowdeck-demo-stream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Wait for flowdeck, declare, backfill, then play live until stopped. Never raises:
        the demo server must keep serving whatever happens here."""
        try:
            if not self._wait_until_up():
                return
            self._spool_dir = tempfile.mkdtemp(prefix="flowdeck-demo-stream-")
            # A spool of its own: points that could not be sent die with the demo instead
            # of reaching a later flowdeck at the same address.
            client = Client(
                self.url,
                project=self.config.project,
                spool_dir=self._spool_dir,
                metrics_interval=1.0,
                backoff_max=10.0,
            )
            try:
                self._play(client)
            finally:
                client.close(timeout=2.0)
        except Exception:
            log.exception("demo stream: stopped by an unexpected error")
        finally:
            if self._spool_dir:
                shutil.rmtree(self._spool_dir, ignore_errors=True)

    def _wait_until_up(self) -> bool:
        # Companions start before the server listens: wait for it rather than spool.
        waiting_since = time.monotonic()
        told = False
        while not self._stop.is_set():
            if not told and time.monotonic() - waiting_since > 30:
                log.warning("demo stream: still waiting for %s/healthz to answer", self.url)
                told = True
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (OSError, TimeoutError):
                pass
            self._stop.wait(0.5)
        return False

    # -- what it does ------------------------------------------------------------------------
    def _play(self, client: Client) -> None:
        now = self.clock()
        backfill_s = self.backfill.total_seconds()
        # The live part opens at OPENING_TIME_OF_DAY with a spike and then a degradation.
        model = self.model = StreamModel(
            self.seed,
            now - self.backfill,
            speed=self.speed,
            config=self.config,
            scenario_start=(OPENING_TIME_OF_DAY - backfill_s * self.speed) % DAY_S,
            story_at=backfill_s,
        )
        declarations = [(f"/api/v1/flows/{self.config.pipeline}", flow_declaration(self.config))]
        declarations += [
            (f"/api/v1/slos/{name}", body) for name, body in slo_definitions(self.config).items()
        ]
        self._pending = {f"PUT {path}": ("PUT", path, body) for path, body in declarations}
        self._declare()

        started = time.monotonic()
        review_from = now - REVIEW_BACKFILL
        ticks = 0
        for tick in model.run(backfill_s, BACKFILL_TICK_S):
            if self._stop.is_set():
                return
            self._report(client, tick, review=tick.end > review_from, live=False)
            ticks += 1
        self._offer_reviews()
        client.flush(timeout=30)
        log.info(
            "demo stream: %s backfilled with %d ticks (%s) in %.1f s; live every %g s at %g× speed",
            self.config.pipeline,
            ticks,
            self.backfill,
            time.monotonic() - started,
            self.tick_s,
            self.speed,
        )
        while not self._stop.wait(self.tick_s):
            self._declare()
            for tick in self._catch_up(model, self.clock()):
                self._report(client, tick, review=True)
            self._offer_reviews()

    def _catch_up(self, model: StreamModel, now: datetime) -> Iterable[Tick]:
        """Ticks until the model reaches ``now`` (coarser ones after a long pause)."""
        while True:
            gap = (now - model.now).total_seconds()
            if gap < self.tick_s:
                return
            yield model.step(self.tick_s if gap < 10 * self.tick_s else min(gap, 30.0))

    def _declare(self) -> None:
        for key, (method, path, body) in list(self._pending.items()):
            if self.api.due(key) and self.api.call(method, path, body, route=key):
                log.info("demo stream: %s %s declared", method, path)
                del self._pending[key]

    def _report(self, client: Client, tick: Tick, review: bool, live: bool = True) -> None:
        if live:
            self._log_changes(tick)
        cfg = self.config
        at = tick.end
        span = (tick.end - tick.start).total_seconds()
        for stage in tick.stages:
            tags = {"pipeline": cfg.pipeline, "stage": stage.name}
            client.counter("flow.arrivals", stage.arrivals, tags=tags, time=at)
            client.counter("flow.processed", stage.processed, tags=tags, time=at)
            client.counter("flow.failed", stage.failed, tags=tags, time=at)
            client.gauge("flow.queue_depth", stage.queue_depth, tags=tags, time=at)
            for when, value in _spread(tick.start, span, stage.latency_ms):
                client.histogram("flow.stage_latency_ms", value, tags=tags, time=when)
        for signal in cfg.signals:
            tags = {"pipeline": cfg.pipeline, "signal": signal}
            finished = tick.events.get(signal, 0)
            client.counter("flow.events", finished, tags=tags, time=at)
            self.events_reported += finished
            for when, value in _spread(tick.start, span, tick.e2e_latency_ms.get(signal, ())):
                client.histogram("flow.e2e_latency_ms", value, tags=tags, time=when)
        self.ticks += 1
        if review:
            self._sample_for_review(tick)

    def _sample_for_review(self, tick: Tick) -> None:
        model = self.model
        assert model is not None
        for signal in self.config.signals:
            for event in tick.event_ids(signal):
                if review_eligible(event, self.config.review_rate):
                    record, context = model.review_record(tick, signal, event)
                    self._samples.append(
                        {
                            "pipeline": self.config.pipeline,
                            "project": self.config.project,
                            "event_id": event,
                            "signal": signal,
                            "record": record,
                            "context": context,
                            "sampled_at": tick.end.isoformat(),
                        }
                    )

    def _offer_reviews(self) -> None:
        """Send the samples gathered so far. While the endpoint is not there (or refuses
        them) they are dropped: a review queue wants today's events, not a pile-up."""
        samples, self._samples = self._samples, []
        if not samples or not self.api.due(REVIEW_ROUTE):
            return
        for start in range(0, len(samples), MAX_REVIEW_SAMPLES):
            chunk = samples[start : start + MAX_REVIEW_SAMPLES]
            if not self.api.call("POST", REVIEW_PATH, chunk, route=REVIEW_ROUTE):
                return
            self.review_offered += len(chunk)

    def _log_changes(self, tick: Tick) -> None:
        """Say in the log when a spike or a degradation starts, so a demo watcher knows."""
        seen = self._seen
        for spike in tick.spikes:
            if spike not in seen:
                log.info(
                    "demo stream: traffic spike ×%.1f on %s (%s)",
                    spike.factor,
                    ", ".join(spike.signals),
                    spike.cause,
                )
        for d in tick.degradations:
            if d not in seen:
                log.info(
                    "demo stream: %s degraded for ~%.0f s: %s",
                    d.stage,
                    (d.end - d.start) / self.speed,
                    d.cause,
                )
        self._seen = {*tick.spikes, *tick.degradations}


def _spread(
    start: datetime, span: float, values: Iterable[float]
) -> Iterable[tuple[datetime, float]]:
    """Observations of a tick spread evenly over it (they happened during it, not at once)."""
    items = list(values)
    for i, value in enumerate(items):
        yield start + timedelta(seconds=span * (i + 0.5) / len(items)), value


# -- as a companion of the demo server ---------------------------------------------------------
def local_url(host: str, port: int) -> str:
    """Where this process's own server answers (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def stream_companion(seed: int, speed: float, backfill: timedelta = BACKFILL) -> Companion:
    """What runs beside the demo server: the streaming pipeline, reporting to the server at
    the settings' host and port once it listens."""

    def companion(svc: Services) -> AbstractAsyncContextManager[None]:
        url = local_url(svc.settings.host, svc.settings.port)
        driver = StreamDriver(url, seed=seed, speed=speed, clock=svc.clock, backfill=backfill)

        async def stop() -> None:
            await asyncio.to_thread(driver.stop)

        # It reports over HTTP: stopped before the server stops listening, it sends its last
        # points instead of keeping them for a server that is gone.
        svc.stopping.append(stop)
        return _running(driver)

    return companion


@asynccontextmanager
async def _running(driver: StreamDriver) -> AsyncIterator[None]:
    driver.start()
    log.info("demo stream: %s plays at %g× speed", driver.config.pipeline, driver.speed)
    try:
        yield
    finally:
        await asyncio.to_thread(driver.stop)
