"""Offer a pipeline's events for human review: a small share of them (the pipeline's
sampling rate, 0.5 to 2 %) goes to flowdeck's review queue.

    reviewer = client.reviewer("market_signals")
    for event in events:
        reviewer.offer(event["id"], record=event, context={"source": "pos"},
                       signal=event["type"])

Which events are sampled is decided by a hash of the event id (the same rule as the server's,
``flowdeck/review/sampling.py``), so the same event is always or never sampled, whichever
process sees it. Without ``rate`` the reviewer asks flowdeck for the pipeline's rate in the
background (and again every few minutes), using the default of 1 % until it knows. Samples
are sent from a background thread like runs and metric points (sender.py): spooled while
flowdeck is down and sent later; an offer never waits for the network and never raises
because of it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import re
import threading
import time
import urllib.parse
import urllib.request
import weakref
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from flowdeck.sdk.sender import Sender
from flowdeck.sdk.spool import Spool

if TYPE_CHECKING:
    from flowdeck.sdk.client import Client

log = logging.getLogger("flowdeck.sdk")

MIN_RATE: Final = 0.005
MAX_RATE: Final = 0.02
DEFAULT_RATE: Final = 0.01
REFRESH_S: Final = 300.0
_SCALE: Final = float(2**64)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def position(event_id: str) -> float:
    """Where ``event_id`` falls in [0, 1): SHA-256 of its UTF-8 bytes, first 8 bytes as an
    unsigned big-endian integer, over 2**64 (as the server computes it)."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_sampled(event_id: str, rate: float) -> bool:
    return position(event_id) < rate


def _check_text(what: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= limit or _CONTROL.search(value):
        raise ValueError(
            f"{what} must be text of 1 to {limit} characters without control characters, "
            f"got {value!r}"
        )
    return value


def _check_rate(rate: float) -> float:
    if not isinstance(rate, int | float) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be a fraction between {MIN_RATE} and {MAX_RATE}, got {rate!r}")
    return float(rate)


class Reviewer:
    """Samples one pipeline's events into flowdeck's review queue (see the module's
    docstring). Made by :meth:`flowdeck.sdk.Client.reviewer`."""

    def __init__(
        self,
        client: Client,
        pipeline: str,
        *,
        project: str | None = None,
        rate: float | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.pipeline = _check_text("pipeline", pipeline, 200)
        self.project = _check_text("project", project, 200) if project is not None else None
        self.fixed_rate = rate is not None
        self._rate = _check_rate(rate) if rate is not None else DEFAULT_RATE
        self.rate_source = "given" if rate is not None else "default"
        self.url = client.url
        self.refresh_s = refresh_s
        base = client.sender
        self.sender = Sender(
            client.url,
            # Beside the runs' spool of the same flowdeck, in a folder of its own.
            Spool(base.spool.path.parent, client.url, "review"),
            timeout=base.timeout,
            backoff_start=base.backoff_start,
            backoff_max=base.backoff_max,
            path="/api/v1/review/samples",
            batch_size=500,
            noun="review sample(s)",
        )
        if self.sender.spool.files():
            self.sender.start()
        self.offered = 0
        self.sampled_count = 0
        self._closed = False
        self._stop = threading.Event()
        self._asked = threading.Event()  # set once flowdeck answered the rate (or not asked)
        if self.fixed_rate:
            self._asked.set()
        else:
            threading.Thread(
                target=self._refresh_loop, name="flowdeck-review-rate", daemon=True
            ).start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the rate -----------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """The sampling rate in use (a fraction)."""
        return self._rate

    def wait_for_rate(self, timeout: float) -> bool:
        """Wait until flowdeck's rate is known (True), or ``timeout`` s passed (False)."""
        return self._asked.wait(timeout)

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._fetch_rate()
            except Exception as exc:  # flowdeck down or odd: keep the rate we have
                log.debug("flowdeck: could not read the review rate of %s: %s", self.pipeline, exc)
            self._stop.wait(self.refresh_s)

    def _fetch_rate(self) -> None:
        query = urllib.parse.urlencode({"project": self.project or "default"})
        path = urllib.parse.quote(self.pipeline, safe="")
        url = f"{self.url}/api/v1/review/settings/{path}?{query}"
        request = urllib.request.Request(url, headers={"User-Agent": "flowdeck-sdk"})
        with urllib.request.urlopen(request, timeout=self.sender.timeout) as response:
            answer = json.loads(response.read())
        self._rate = _check_rate(answer["rate"])
        self.rate_source = str(answer.get("source", "server"))
        self._asked.set()

    # -- offering -----------------------------------------------------------------------
    def sampled(self, event_id: str) -> bool:
        """Whether ``event_id`` is in the sample at the current rate."""
        return is_sampled(_check_text("event_id", event_id, 200), self._rate)

    def offer(
        self,
        event_id: str,
        record: dict[str, Any],
        context: dict[str, Any] | None = None,
        *,
        signal: str | None = None,
        sampled_at: datetime | None = None,
    ) -> bool:
        """Send the event for review when it is sampled; True when it was. ``record`` is
        the event as the pipeline produced it, ``context`` what a reviewer needs to judge it
        (its source, the inputs, the model…); both JSON objects."""
        if not isinstance(record, dict):
            raise ValueError(f"record must be a dict, got {type(record).__name__}")
        if context is not None and not isinstance(context, dict):
            raise ValueError(f"context must be a dict, got {type(context).__name__}")
        if signal is not None:
            _check_text("signal", signal, 100)
        self.offered += 1
        if not self.sampled(event_id):
            return False
        at = sampled_at or datetime.now(UTC)
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("sampled_at must be a datetime with a time zone")
        sample: dict[str, Any] = {
            "pipeline": self.pipeline,
            "event_id": event_id,
            "record": record,
            "context": context or {},
            "sampled_at": at.isoformat(),
        }
        if self.project is not None:
            sample["project"] = self.project
        if signal is not None:
            sample["signal"] = signal
        try:
            self.sender.submit(sample)
        except Exception:  # reporting must never break the pipeline
            log.exception("flowdeck: could not queue a review sample")
        self.sampled_count += 1
        return True

    # -- delivery -----------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` s until the samples so far are sent or spooled."""
        return self.sender.flush(timeout)

    def resend(self) -> bool:
        """Send the spooled samples now; True when none is left."""
        return self.sender.resend()

    @property
    def spooled(self) -> int:
        return self.sender.spool.count()

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued within ``timeout`` s and spool the rest."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        deadline = time.monotonic() + timeout
        self.sender.close(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Reviewer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[Reviewer]) -> None:
    reviewer = ref()
    if reviewer is not None:
        reviewer.close()
