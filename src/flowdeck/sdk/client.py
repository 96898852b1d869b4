"""The SDK's entry point: a client that reports runs to flowdeck without ever getting in the
pipeline's way (see sender.py for what happens when flowdeck is down)."""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from flowdeck.sdk.metrics import MAX_REQUEST_POINTS, Metrics, series_weight
from flowdeck.sdk.run import Run
from flowdeck.sdk.sender import Sender
from flowdeck.sdk.spool import Spool, default_spool_root

if TYPE_CHECKING:
    from flowdeck.sdk.flows import Flow
    from flowdeck.sdk.review import Reviewer

log = logging.getLogger("flowdeck.sdk")

P = ParamSpec("P")
R = TypeVar("R")
DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """Reports runs to the flowdeck at ``url`` (default ``$FLOWDECK_URL``, else
    http://127.0.0.1:8000). ``env``, ``project`` and ``labels`` apply to every run it
    reports unless a run says otherwise (``env`` defaults to ``$FLOWDECK_ENV``).

    Reports are sent from a background thread. When flowdeck is unreachable they are kept
    in ``spool_dir`` (default ``$FLOWDECK_SPOOL_DIR``, else ~/.cache/flowdeck/spool) and sent
    later, by this process or the next one that starts a client for the same URL. At exit a
    client waits at most ``flush_timeout`` seconds for the last reports.

    Metric points (``gauge``, ``counter``, ``histogram``) are buffered and sent every
    ``metrics_interval`` seconds, or as soon as ``metrics_flush_points`` are buffered, at
    most ``metrics_max_request_points`` per request, the same way (spooled while flowdeck
    is down). ``labels`` are not metric tags; ``metric_tags`` are added to every point.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        env: str | None = None,
        project: str | None = None,
        labels: dict[str, str] | None = None,
        timeout: float = 5.0,
        spool_dir: str | Path | None = None,
        flush_timeout: float = 2.0,
        backoff_start: float = 1.0,
        backoff_max: float = 300.0,
        metric_tags: dict[str, str] | None = None,
        metrics_interval: float = 10.0,
        metrics_flush_points: int = 100_000,
        metrics_max_request_points: int = MAX_REQUEST_POINTS,
    ) -> None:
        self.url = (url or os.environ.get("FLOWDECK_URL") or DEFAULT_URL).rstrip("/")
        self.env = env or os.environ.get("FLOWDECK_ENV") or None
        self.project = project or os.environ.get("FLOWDECK_PROJECT") or None
        self.labels = dict(labels or {})
        self.flush_timeout = flush_timeout
        root = Path(spool_dir).expanduser() if spool_dir is not None else default_spool_root()
        self.sender = Sender(
            self.url,
            Spool(root, self.url),
            timeout=timeout,
            backoff_start=backoff_start,
            backoff_max=backoff_max,
        )
        self.metrics = Metrics(
            Sender(
                self.url,
                Spool(root, self.url, "metrics"),
                timeout=timeout,
                backoff_start=backoff_start,
                backoff_max=backoff_max,
                path="/api/v1/metrics/points",
                batch_size=10_000,
                max_weight=metrics_max_request_points,
                weigh=series_weight,
                noun="metric series",
            ),
            project=self.project,
            tags=metric_tags,
            interval=metrics_interval,
            flush_points=metrics_flush_points,
            max_request_points=metrics_max_request_points,
        )
        # Reports spooled by an earlier process go out as soon as flowdeck answers.
        for sender in (self.sender, self.metrics.sender):
            if sender.spool.files():
                sender.start()
        self._closed = False
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- runs ---------------------------------------------------------------------------------
    def run(
        self,
        pipeline: str,
        *,
        batch_id: str | int | None = None,
        env: str | None = None,
        project: str | None = None,
        run_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Run:
        """A run of ``pipeline``; use it with ``with`` or ``async with``."""
        return Run(
            self,
            pipeline,
            batch_id=batch_id,
            env=env or self.env,
            project=project or self.project,
            run_id=run_id,
            labels={**self.labels, **(labels or {})},
        )

    def job(
        self,
        pipeline: str | None = None,
        *,
        batch_id: str | int | None = None,
        env: str | None = None,
        project: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorate a function (plain or async) so that each call is a run; the pipeline is
        the function's name unless given. Inside, ``flowdeck.sdk.current_run()`` is the run."""

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            name = pipeline or fn.__name__

            def new_run() -> Run:
                return self.run(name, batch_id=batch_id, env=env, project=project, labels=labels)

            if inspect.iscoroutinefunction(fn):
                coroutine = cast(Callable[P, Awaitable[Any]], fn)

                @functools.wraps(fn)
                async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                    async with new_run():
                        return await coroutine(*args, **kwargs)

                return cast(Callable[P, R], run_async)

            @functools.wraps(fn)
            def run_sync(*args: P.args, **kwargs: P.kwargs) -> R:
                with new_run():
                    return fn(*args, **kwargs)

            return run_sync

        return decorate

    def batch(
        self,
        batch_id: str | int | None = None,
        *,
        env: str | None = None,
        project: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Batch:
        """A batch whose runs share its id, env and labels. Without an id, one is made from
        the current time (``20261123T010000-1a2b3c``)."""
        if batch_id is None:
            batch_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        return Batch(
            self,
            batch_id,
            env=env or self.env,
            project=project or self.project,
            labels={**self.labels, **(labels or {})},
        )

    # -- flows --------------------------------------------------------------------------------
    def flow(self, pipeline: str, *, project: str | None = None) -> Flow:
        """A streaming pipeline's stages: ``.declare(stages=[...])`` once, then
        ``.stage(name).report(arrivals=, processed=, queue_depth=, latency_ms=)`` and
        ``.finished(signal, latency_ms=)``. See flowdeck.sdk.flows."""
        from flowdeck.sdk.flows import Flow

        return Flow(self, pipeline, project=project)

    # -- review -------------------------------------------------------------------------------
    def reviewer(
        self, pipeline: str, *, project: str | None = None, rate: float | None = None
    ) -> Reviewer:
        """Offers ``pipeline``'s events for human review: ``.offer(event_id, record,
        context, signal=...)`` sends the sampled ones (``rate``, default: flowdeck's rate for
        the pipeline, 0.5 to 2 %). See flowdeck.sdk.review."""
        from flowdeck.sdk.review import Reviewer

        return Reviewer(self, pipeline, project=project or self.project, rate=rate)

    # -- metrics ------------------------------------------------------------------------------
    def gauge(
        self,
        name: str,
        value: float,
        *,
        tags: dict[str, str] | None = None,
        time: datetime | float | None = None,
        project: str | None = None,
    ) -> None:
        """A measurement at ``time`` (default now; an aware datetime or seconds since 1970):
        queue depth, memory, a SKU count. Query it with avg, min, max or a percentile."""
        self.metrics.record("gauge", name, value, tags, time, project)

    def counter(
        self,
        name: str,
        inc: float = 1,
        *,
        tags: dict[str, str] | None = None,
        time: datetime | float | None = None,
        project: str | None = None,
    ) -> None:
        """Count something: sends the increment, so the query's ``sum`` is the total. The
        increments of one second are sent as one point."""
        self.metrics.record("counter", name, inc, tags, time, project)

    def histogram(
        self,
        name: str,
        value: float,
        *,
        tags: dict[str, str] | None = None,
        time: datetime | float | None = None,
        project: str | None = None,
    ) -> None:
        """One observation (a latency, a file size): each is sent, and flowdeck's sketch
        answers p50, p95 and p99 over them."""
        self.metrics.record("histogram", name, value, tags, time, project)

    # -- delivery -----------------------------------------------------------------------------
    def _send(self, report: dict[str, Any]) -> None:
        try:
            self.sender.submit(report)
        except Exception:  # reporting must never break the pipeline
            log.exception("flowdeck: could not queue a report")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` s until every report and metric point so far is sent or
        spooled."""
        deadline = time.monotonic() + timeout
        runs = self.sender.flush(timeout)
        return self.metrics.flush(max(0.0, deadline - time.monotonic())) and runs

    def resend(self) -> bool:
        """Send the spooled reports and points now; True when none is left."""
        runs = self.sender.resend()
        return self.metrics.sender.resend() and runs

    @property
    def spooled(self) -> int:
        """How many reports wait in the spool."""
        return self.sender.spool.count()

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting at most ``timeout`` s, default ``flush_timeout``) and
        spool what could not be sent."""
        if self._closed:
            return
        self._closed = True
        wait = self.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        self.sender.close(wait)
        self.metrics.close(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        client.close()


class Batch:
    """Runs that belong together (one ``process_queue_id``)."""

    def __init__(
        self,
        client: Client,
        batch_id: str | int,
        *,
        env: str | None,
        project: str | None,
        labels: dict[str, str],
    ) -> None:
        self.client = client
        self.batch_id = batch_id
        self.env = env
        self.project = project
        self.labels = labels

    def run(
        self,
        pipeline: str,
        *,
        run_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> Run:
        return Run(
            self.client,
            pipeline,
            batch_id=self.batch_id,
            env=self.env,
            project=self.project,
            run_id=run_id,
            labels={**self.labels, **(labels or {})},
        )

    def job(
        self, pipeline: str | None = None, *, labels: dict[str, str] | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        return self.client.job(
            pipeline,
            batch_id=self.batch_id,
            env=self.env,
            project=self.project,
            labels={**self.labels, **(labels or {})},
        )

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
