"""Sending reports from a background thread, so a pipeline never waits for flowdeck.

Reports queue in memory and go out in batches with ``POST /api/v1/runs``. When flowdeck
cannot be reached (refused, timed out, 5xx, 429), the batch goes to the spool and the sender
waits before trying again, doubling the wait each time (1 s up to 5 min, with jitter);
meanwhile new reports go straight to the spool. Once flowdeck answers, the spool is sent
first, oldest file first, then whatever is queued.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from flowdeck.sdk.spool import Report, Spool

log = logging.getLogger("flowdeck.sdk")

BATCH_SIZE: Final = 1000  # reports per request (flowdeck takes up to 10,000)
MAX_PENDING: Final = 50_000  # beyond this, the oldest queued reports go to the spool


class Unreachable(Exception):
    """flowdeck did not take the reports now; they may be sent again later."""


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def encode(reports: list[Report]) -> bytes:
    return json.dumps(reports, default=_default, separators=(",", ":")).encode()


class Sender:
    def __init__(
        self,
        url: str,
        spool: Spool,
        *,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        backoff_start: float = 1.0,
        backoff_max: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        path: str = "/api/v1/runs",
        batch_size: int = BATCH_SIZE,
        max_weight: int | None = None,
        weigh: Callable[[Report], int] | None = None,
        noun: str = "report(s)",
    ) -> None:
        self.endpoint = url.rstrip("/") + path
        self.spool = spool
        self.timeout = timeout
        self.headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "flowdeck-sdk",
            **(headers or {}),
        }
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.clock = clock
        # A request carries at most batch_size reports and, when a report weighs more than
        # one (a metric series counts its points), at most max_weight in all.
        self.batch_size = batch_size
        self.max_weight = max_weight
        self.weigh = weigh or (lambda report: 1)
        self.noun = noun
        self.sent = 0  # reports (by weight) flowdeck acknowledged
        self.dropped = 0  # reports (by weight) flowdeck refused as invalid (never retried)
        self._cond = threading.Condition()
        self._pending: list[Report] = []
        self._inflight: list[Report] = []
        self._abandoned: list[Report] | None = None  # spooled by close() while on the wire
        self._backoff = 0.0
        self._retry_at = 0.0
        # When to look at the spool again while another process holds its send lock.
        self._resend_at = 0.0
        self._spooled = bool(spool.files())
        self._closing = False
        self._thread: threading.Thread | None = None

    # -- the pipeline's side: never blocks on the network ---------------------------------
    def submit(self, report: Report) -> None:
        with self._cond:
            if self._closing:
                self._spool([report])
                return
            self._pending.append(report)
            if len(self._pending) > MAX_PENDING:
                overflow = self._pending[:BATCH_SIZE]
                del self._pending[:BATCH_SIZE]
                self._spool(overflow)
            self._start()
            self._cond.notify_all()

    def start(self) -> None:
        """Begin sending in the background (also resends what earlier runs spooled)."""
        with self._cond:
            self._start()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to be sent (or spooled); True when
        nothing is left in memory."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._start()
            self._cond.notify_all()
            while self._pending or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Send what is queued within ``timeout`` seconds; spool the rest."""
        self.flush(timeout)
        with self._cond:
            self._closing = True
            # A batch still on the wire may or may not arrive: spool it too (a duplicate
            # report is harmless, a lost one is not).
            leftover = self._inflight + self._pending
            self._abandoned = self._inflight
            self._pending = []
            if leftover:
                self._spool(leftover)
            self._cond.notify_all()

    @property
    def down(self) -> bool:
        """True while flowdeck is known to be unreachable (waiting before a retry)."""
        return self.clock() < self._retry_at

    # -- the background thread -------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="flowdeck-sdk", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    if self._spooled:
                        wait = max(self._retry_at, self._resend_at) - self.clock()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closing:
                    return
                batch = self._pending[: self._take(self._pending)]
                del self._pending[: len(batch)]
                self._inflight = batch
            try:
                self._deliver(batch)
            except Exception:  # never let the thread die: the pipeline relies on it
                log.exception("flowdeck reporting failed")
            finally:
                with self._cond:
                    self._inflight = []
                    self._cond.notify_all()

    def _deliver(self, batch: list[Report]) -> None:
        if self.down:
            self._spool_batch(batch)
            return
        if self._spooled and not self._resend():
            self._spool_batch(batch)
            return
        if batch:
            try:
                self._post(batch)
            except Unreachable as exc:
                self._failed(exc)
                self._spool_batch(batch)
            else:
                self._recovered()

    def _spool_batch(self, batch: list[Report]) -> None:
        with self._cond:
            if not batch or batch is self._abandoned:
                return  # close() has spooled it already
        self._spool(batch)

    def _spool(self, reports: list[Report]) -> None:
        try:
            self.spool.put(reports)
            self._spooled = True
        except OSError as exc:
            log.error(
                "flowdeck: could not spool %d reports to %s: %s", len(reports), self.spool.path, exc
            )

    def resend(self) -> bool:
        """Send the spooled reports now (oldest first); True when the spool is empty."""
        return self._resend()

    def _resend(self) -> bool:
        with self.spool.locked() as mine:
            if not mine:
                # Another process of this pipeline is sending them; look again later.
                self._resend_at = self.clock() + 5.0
                return True
            for file in self.spool.files():
                try:
                    reports = self.spool.read(file)
                except OSError:
                    continue
                try:
                    left = reports
                    while left:
                        n = self._take(left)
                        self._post(left[:n])
                        left = left[n:]
                except Unreachable as exc:
                    self._failed(exc)
                    return False
                file.unlink(missing_ok=True)
                log.info("flowdeck: resent %d spooled %s", len(reports), self.noun)
            self._spooled = False
            self._recovered()
            return True

    def _take(self, reports: list[Report]) -> int:
        """How many of ``reports`` (from the front) go into one request: at least one."""
        if self.max_weight is None:
            return min(len(reports), self.batch_size)
        total = 0
        for n, report in enumerate(reports[: self.batch_size]):
            total += self.weigh(report)
            if n and total > self.max_weight:
                return n
        return min(len(reports), self.batch_size)

    def _failed(self, exc: Unreachable) -> None:
        if self._backoff == 0:
            log.warning(
                "flowdeck unreachable (%s); keeping reports in %s and retrying",
                exc,
                self.spool.path,
            )
        self._backoff = min(max(self._backoff * 2, self.backoff_start), self.backoff_max)
        self._retry_at = self.clock() + self._backoff * random.uniform(0.8, 1.2)

    def _recovered(self) -> None:
        self._backoff = 0.0
        self._retry_at = 0.0

    # -- HTTP ---------------------------------------------------------------------------
    def _post(self, reports: list[Report]) -> None:
        """Send reports; raises Unreachable when they should be sent again later."""
        request = urllib.request.Request(
            self.endpoint, data=gzip.compress(encode(reports)), headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = exc.read().decode("utf-8", "replace")[:500]
            exc.close()
            if status in (408, 425, 429) or status >= 500:
                raise Unreachable(f"HTTP {status}") from None
            if status in (413, 422) and len(reports) > 1:
                # Invalid reports sink their whole request: send them one by one so that
                # only the bad ones are dropped.
                for report in reports:
                    self._post([report])
                return
            self.dropped += sum(map(self.weigh, reports))
            log.error("flowdeck refused %d %s: HTTP %d %s", len(reports), self.noun, status, detail)
            return
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(str(reason)) from None
        self.sent += sum(map(self.weigh, reports))
