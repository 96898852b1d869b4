"""The event bus across replicas: with PostgreSQL, each commit's change goes out as
NOTIFY on one channel and every replica (the writer's own included) LISTENs and hands what
it hears to its local subscribers. So every replica's live clients see every change."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
import psycopg

from flowdeck.events import Change, EventBus
from flowdeck.store.postgres import conninfo_from_url

log = logging.getLogger("flowdeck.events")

CHANNEL: Final = "flowdeck_changes"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD: Final = 7600
# Runs named per change; clients are told the count and reload for more.
MAX_RUNS: Final = 500
# Alerting news items per notification (each is small: what, fingerprint, state).
MAX_ALERTS: Final = 50
# Metric names per notification (a name is at most 200 characters: well under the limit).
MAX_METRIC_NAMES: Final = 30


def payloads(runs: Sequence[dict[str, Any]], batches: tuple[dict[str, Any], ...]) -> list[str]:
    """Split a change into NOTIFY payloads, each under the size limit."""
    out: list[str] = []
    items = [("r", r) for r in runs[:MAX_RUNS]] + [("b", b) for b in batches]
    chunk: dict[str, list[Any]] = {"r": [], "b": []}
    size = 20
    for kind, item in items:
        encoded = len(orjson.dumps(item)) + 1
        if size + encoded > MAX_PAYLOAD and (chunk["r"] or chunk["b"]):
            out.append(orjson.dumps(chunk).decode())
            chunk, size = {"r": [], "b": []}, 20
        chunk[kind].append(item)
        size += encoded
    if chunk["r"] or chunk["b"]:
        out.append(orjson.dumps(chunk).decode())
    return out


class PostgresEventBus(EventBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._conninfo = conninfo_from_url(url)
        self._send: psycopg.Connection[Any] | None = None
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="flowdeck-listen", daemon=True)
        self._thread.start()
        if not self._listening.wait(10):
            log.warning("not yet listening for changes on PostgreSQL; retrying in background")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._send_lock:
            if self._send is not None:
                self._send.close()

    def publish(
        self, runs: Sequence[dict[str, Any]], batches: tuple[dict[str, Any], ...]
    ) -> Change | None:
        """Announce a committed change to every replica (delivered here by the listener)."""
        self._notify(payloads(runs, batches), "a change")
        return None

    def publish_alerts(self, alerts: tuple[dict[str, Any], ...]) -> None:
        """Alerting's news for every replica's live clients (best effort, like changes)."""
        message = orjson.dumps({"a": list(alerts[:MAX_ALERTS])}, option=orjson.OPT_UTC_Z)
        self._notify([message.decode()], "alerting news")

    def publish_metrics(self, names: tuple[str, ...]) -> None:
        """The metrics that received points, for every replica's live dashboards."""
        message = orjson.dumps({"m": list(names[:MAX_METRIC_NAMES])})
        self._notify([message.decode()], "metric points")

    def _notify(self, messages: list[str], what: str) -> None:
        """NOTIFY each message, reconnecting once; a failure is logged, not raised."""
        with self._send_lock:
            for attempt in (1, 2):
                try:
                    if self._send is None or self._send.closed:
                        self._send = psycopg.connect(self._conninfo, autocommit=True)
                    with self._send.cursor() as cur:
                        for message in messages:
                            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                    break
                except psycopg.Error as exc:
                    self._send = None
                    if attempt == 2:
                        # The commit stands; clients will catch up on their next reload.
                        log.warning("could not announce %s: %s", what, exc)

    def _listen(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if self._listening.is_set():
                        # Changes may have gone by while we were away: clients reload.
                        self.resync_all()
                    self._listening.set()
                    backoff = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._receive(note.payload)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("change listener lost PostgreSQL (%s); reconnecting", exc)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _receive(self, payload: str) -> None:
        try:
            data = orjson.loads(payload)
            self.deliver(
                tuple(data.get("r", ())),
                tuple(data.get("b", ())),
                tuple(data.get("a", ())),
                tuple(data.get("m", ())),
            )
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            log.warning("ignored a malformed change notification")
