"""Metric points from a pipeline: gauges, counters and histograms, batched in the background.

A call only appends to an in-memory buffer (one per metric name, tags and project). The
buffer goes to the sender every ``interval`` seconds, or at once when it holds
``flush_points`` points, as series in columns (``{"name", "tags", "project", "times",
"values"}``) for ``POST /api/v1/metrics/points``; a request carries at most
``max_request_points`` points. From there on it is the runs' machinery (sender.py): gzip,
a background thread, the spool and retries with backoff while flowdeck is down or answers
5xx. A series flowdeck refuses (422, say over its tag-combination limit) is logged and
dropped; the other series of its request are still sent.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time as _time
from datetime import datetime
from typing import Final

from flowdeck.sdk.sender import Sender
from flowdeck.sdk.spool import Report

log = logging.getLogger("flowdeck.sdk")

MAX_REQUEST_POINTS: Final = 500_000  # flowdeck's default limit per request
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}")
_TAG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,99}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SeriesKey = tuple[str, tuple[tuple[str, str], ...], str]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"metric name {name!r} must be 1 to 200 characters: a letter or _ first, then "
            "letters, digits, _ . : -"
        )
    if name.startswith("runs."):
        raise ValueError(f"metric name {name!r}: names starting with 'runs.' are reserved")
    return name


def check_tags(tags: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not tags:
        return ()
    if len(tags) > 32:
        raise ValueError("at most 32 tags per point")
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
            raise ValueError(
                f"tag key {key!r} must be 1 to 100 characters: a letter or _ first, then "
                "letters, digits, _ . -"
            )
        if not isinstance(value, str) or not 1 <= len(value) <= 200 or _CONTROL.search(value):
            raise ValueError(
                f"tag {key!r} must have a text value of 1 to 200 characters without control "
                f"characters, got {value!r}"
            )
    return tuple(sorted(tags.items()))


def epoch_seconds(at: datetime | float | int | None) -> float:
    """A point's time as seconds since 1970 (now when not given)."""
    if at is None:
        return _time.time()
    if isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("time must be a datetime with a time zone (or seconds since 1970)")
        return at.timestamp()
    if isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at):
        return float(at)
    raise ValueError(f"time must be a datetime with a time zone or seconds since 1970, got {at!r}")


def series_weight(report: Report) -> int:
    values = report.get("values")
    return len(values) if isinstance(values, list) else 1


class _Series:
    __slots__ = ("seconds", "times", "values")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.values: list[float] = []
        self.seconds: dict[float, int] = {}  # a counter's second → its point's index


class Metrics:
    """The buffer behind ``Client.gauge``, ``Client.counter`` and ``Client.histogram``."""

    def __init__(
        self,
        sender: Sender,
        *,
        project: str | None,
        tags: dict[str, str] | None = None,
        interval: float = 10.0,
        flush_points: int = 100_000,
        max_request_points: int = MAX_REQUEST_POINTS,
    ) -> None:
        self.sender = sender
        self.project = project or "default"
        self.tags = dict(tags or {})
        self.interval = interval
        self.flush_points = flush_points
        self.max_request_points = max_request_points
        self.skipped = 0  # values that were not finite numbers (NaN, inf): never sent
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer: dict[SeriesKey, _Series] = {}
        self._points = 0
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- the pipeline's side: appends to memory, never waits on the network ------------------
    def record(
        self,
        kind: str,
        name: str,
        value: float,
        tags: dict[str, str] | None,
        time: datetime | float | int | None,
        project: str | None,
    ) -> None:
        key = (check_name(name), check_tags({**self.tags, **(tags or {})}), project or self.project)
        at = epoch_seconds(time)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{kind} {name!r}: the value must be a number, got {value!r}")
        number = float(value)
        if not math.isfinite(number):
            # A NaN from the data must not break the job: skip it, say so the first time.
            if self.skipped == 0:
                log.warning("flowdeck: %s %r got %r; not sent", kind, name, value)
            self.skipped += 1
            return
        full = False
        with self._lock:
            series = self._buffer.get(key)
            if series is None:
                series = self._buffer[key] = _Series()
            if kind == "counter":
                # Increments in the same second add up: sum stays exact, volume stays low.
                second = float(math.floor(at))
                index = series.seconds.get(second)
                if index is None:
                    series.seconds[second] = len(series.values)
                    series.times.append(second)
                    series.values.append(number)
                    self._points += 1
                else:
                    series.values[index] += number
            else:
                series.times.append(at)
                series.values.append(number)
                self._points += 1
            # After close() nothing flushes on a timer: hand the point on at once (to the spool).
            full = self._points >= self.flush_points or self._closed
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._loop, name="flowdeck-sdk-metrics", daemon=True
                )
                self._thread.start()
        if full:
            self.flush_buffer()

    # -- to the sender -------------------------------------------------------------------------
    def flush_buffer(self) -> None:
        """Hand every buffered point to the sender (which sends or spools them)."""
        with self._lock:
            buffer, self._buffer, self._points = self._buffer, {}, 0
        for (name, tags, project), series in buffer.items():
            for start in range(0, len(series.values), self.max_request_points):
                end = start + self.max_request_points
                item: Report = {
                    "name": name,
                    "tags": dict(tags),
                    "project": project,
                    "times": series.times[start:end],
                    "values": series.values[start:end],
                }
                try:
                    self.sender.submit(item)
                except Exception:  # reporting must never break the pipeline
                    log.exception("flowdeck: could not queue metric points")

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush_buffer()
            except Exception:  # never let the thread die
                log.exception("flowdeck: metric flush failed")

    def flush(self, timeout: float) -> bool:
        self.flush_buffer()
        return self.sender.flush(timeout)

    def close(self, timeout: float) -> None:
        self._closed = True
        self._wake.set()
        self.flush_buffer()
        self.sender.close(timeout)

    @property
    def buffered(self) -> int:
        """Points not yet handed to the sender."""
        with self._lock:
            return self._points

    @property
    def spooled(self) -> int:
        """Points waiting in the spool."""
        total = 0
        for file in self.sender.spool.files():
            try:
                total += sum(series_weight(item) for item in self.sender.spool.read(file))
            except OSError:
                continue
        return total
