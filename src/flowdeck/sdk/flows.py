"""Report a streaming pipeline's stages, so flowdeck can draw its live flow.

    flow = client.flow("market_signals")
    flow.declare(
        stages=["ingest", "validate", {"name": "enrich", "queue_capacity": 5000,
                                       "capacity_per_s": 120}, "store"],
        signals=["sales_activity", "field_reports", "market_signals"],
    )
    enrich = flow.stage("enrich")
    enrich.report(arrivals=130, processed=118, queue_depth=420, latency_ms=[410.0, 388.5])
    flow.finished(signal="sales_activity", latency_ms=1250.0)

``declare`` is the one call that waits for flowdeck: it sends the declaration
(``PUT /api/v1/flows/{pipeline}``) and returns what flowdeck stored. A declaration flowdeck
refuses raises ValueError naming the field and the rule; when flowdeck cannot be reached it
logs a warning and returns None (the pipeline goes on; declare again later).

Everything else is metric points through the client's buffer (``Client.counter``,
``gauge``, ``histogram``), sent in the background: ``flow.arrivals``, ``flow.processed``,
``flow.failed`` (counters), ``flow.queue_depth`` (gauge) and ``flow.stage_latency_ms``
(histogram) tagged with the pipeline and the stage; ``flow.events`` (counter) and
``flow.e2e_latency_ms`` (histogram) tagged with the pipeline and the signal.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowdeck.sdk.client import Client

log = logging.getLogger("flowdeck.sdk")

Time = datetime | float | None


def _values(value: float | Iterable[float] | None) -> list[float]:
    if value is None:
        return []
    if isinstance(value, int | float):
        return [value]
    return list(value)


class Flow:
    """One pipeline's flow: declare its stages once, then report through :meth:`stage`
    and :meth:`finished`."""

    def __init__(self, client: Client, pipeline: str, *, project: str | None = None) -> None:
        if not isinstance(pipeline, str) or not pipeline:
            raise ValueError("pipeline must be a non-empty string")
        self.client = client
        self.pipeline = pipeline
        self.project = project or client.project or "default"

    # -- the declaration ----------------------------------------------------------------------
    def declare(
        self,
        stages: Sequence[str | Mapping[str, Any]],
        *,
        title: str | None = None,
        description: str | None = None,
        signals: Sequence[str] | None = None,
        thresholds: Mapping[str, Any] | None = None,
        review_rate: float | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Declare (or re-declare) the flow's stages, in order. A stage is a name or
        ``{"name", "queue_capacity", "capacity_per_s"}``. Returns the stored declaration;
        None when flowdeck cannot be reached."""
        body: dict[str, Any] = {
            "project": self.project,
            "stages": [{"name": s} if isinstance(s, str) else dict(s) for s in stages],
        }
        optional = {
            "title": title,
            "description": description,
            "signals": None if signals is None else list(signals),
            "thresholds": None if thresholds is None else dict(thresholds),
            "review_rate": review_rate,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        url = f"{self.client.url}/api/v1/flows/{urllib.parse.quote(self.pipeline, safe='')}"
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "flowdeck-sdk"},
            method="PUT",
        )
        try:
            with urllib.request.urlopen(
                request, timeout=timeout if timeout is not None else self.client.sender.timeout
            ) as response:
                stored: dict[str, Any] = json.loads(response.read())
                return stored
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            exc.close()
            if exc.code == 422 or exc.code == 400:
                try:
                    message = json.loads(detail).get("message", detail)
                except ValueError:
                    message = detail
                raise ValueError(f"flow {self.pipeline!r}: {message}") from None
            log.warning("flowdeck: could not declare flow %r: HTTP %d", self.pipeline, exc.code)
            return None
        except (urllib.error.URLError, OSError) as exc:
            log.warning(
                "flowdeck: could not declare flow %r: %s",
                self.pipeline,
                getattr(exc, "reason", exc),
            )
            return None

    # -- reporting ----------------------------------------------------------------------------
    def stage(self, name: str) -> Stage:
        """The reporter of one stage (``name`` as declared)."""
        return Stage(self, name)

    def finished(
        self,
        signal: str | None = None,
        *,
        latency_ms: float | Iterable[float] | None = None,
        count: int | None = None,
        time: Time = None,
    ) -> None:
        """Events of ``signal`` finished end to end: one per latency given (or ``count``
        of them without latencies). Feeds events processed, speed, the end-to-end
        percentiles and the breakdown by signal."""
        tags = {"pipeline": self.pipeline}
        if signal is not None:
            tags["signal"] = signal
        latencies = _values(latency_ms)
        events = count if count is not None else len(latencies)
        if events:
            self.client.counter("flow.events", events, tags=tags, time=time, project=self.project)
        for value in latencies:
            self.client.histogram(
                "flow.e2e_latency_ms", value, tags=tags, time=time, project=self.project
            )


class Stage:
    """Reports one stage's numbers; every argument is optional."""

    def __init__(self, flow: Flow, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a stage name must be a non-empty string")
        self.flow = flow
        self.name = name
        self.tags = {"pipeline": flow.pipeline, "stage": name}

    def report(
        self,
        *,
        arrivals: float | None = None,
        processed: float | None = None,
        failed: float | None = None,
        queue_depth: float | None = None,
        latency_ms: float | Iterable[float] | None = None,
        time: Time = None,
    ) -> None:
        """``arrivals``, ``processed`` and ``failed``: events since the last report
        (counts, not rates); ``queue_depth``: events waiting now; ``latency_ms``: the time
        one event (or each of several) spent in the stage, waiting and being worked on."""
        client, project = self.flow.client, self.flow.project
        for metric, value in (
            ("flow.arrivals", arrivals),
            ("flow.processed", processed),
            ("flow.failed", failed),
        ):
            if value is not None:
                client.counter(metric, value, tags=self.tags, time=time, project=project)
        if queue_depth is not None:
            client.gauge(
                "flow.queue_depth", queue_depth, tags=self.tags, time=time, project=project
            )
        for value in _values(latency_ms):
            client.histogram(
                "flow.stage_latency_ms", value, tags=self.tags, time=time, project=project
            )
