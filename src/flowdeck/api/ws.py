"""WebSocket /api/v1/ws: committed changes for programs, filtered and paced.

Query parameters: ``project``, ``env``, ``pipeline``, ``batch_id`` (each optional; a run must
match every one given), ``interval`` (1s, 5s, 30s or 1m; default 1s) and ``last_event_id``
(resume after it). Every interval at most one message goes out with everything that matched
meanwhile (each run's and batch's latest state). JSON messages, each with ``type`` and the
event ``id`` to resume after:

- ``hello``: the subscription as understood;
- ``changes``: ``runs`` (run_id, project, pipeline, batch_id, env, status; at most 500, with
  ``runs_count`` and ``truncated``) and ``batches`` (their new counts and health);
- ``heartbeat``: nothing matched for a while, but the id moved on;
- ``resync``: changes may have been missed (the client fell behind, or its id cannot be
  resumed here): reload what you show;
- ``error``: the subscription is invalid; the socket is then closed (code 1008).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from flowdeck.api.services import Services
from flowdeck.events import Change

router = APIRouter(tags=["stream"])

INTERVALS: Final = {"1s": 1.0, "5s": 5.0, "30s": 30.0, "1m": 60.0}
FILTERS: Final = ("project", "env", "pipeline", "batch_id")
PARAMS: Final = (*FILTERS, "interval", "last_event_id")
HEARTBEAT_S: Final = 15.0
MAX_RUNS: Final = 500
POLICY_VIOLATION: Final = 1008


@dataclass
class Subscription:
    filters: dict[str, str]
    interval: float
    last_event_id: int | None


def parse(params: Mapping[str, str]) -> Subscription | str:
    """The subscription a query string asks for, or what is wrong with it."""
    for name in params:
        if name not in PARAMS:
            return f"{name}: is not a known parameter (use {', '.join(PARAMS)})"
    filters: dict[str, str] = {}
    for name in FILTERS:
        value = params.get(name)
        if value is not None:
            if not 1 <= len(value) <= 200:
                return f"{name}: must be 1 to 200 characters"
            filters[name] = value
    interval = params.get("interval", "1s")
    if interval not in INTERVALS:
        return f"interval: must be one of {', '.join(INTERVALS)} (got {interval!r})"
    last = params.get("last_event_id")
    if last is not None and not last.isdigit():
        return f"last_event_id: must be a whole number (got {last!r})"
    return Subscription(filters, INTERVALS[interval], int(last) if last is not None else None)


@dataclass
class Pending:
    """What matched since the last message."""

    filters: dict[str, str]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    last_seq: int = 0

    def _matches(self, item: dict[str, Any], names: tuple[str, ...]) -> bool:
        return all(item.get(n) == self.filters[n] for n in names if n in self.filters)

    def add(self, change: Change) -> None:
        if change.seq <= 0:
            return  # a wake-up, not a change
        self.last_seq = max(self.last_seq, change.seq)
        touched: set[tuple[str, str]] = set()
        for run in change.runs:
            if self._matches(run, FILTERS):
                self.runs[run["run_id"]] = run
                touched.add((run["project"], run["batch_id"]))
        for batch in change.batches:
            key = (batch["project"], batch["batch_id"])
            # A batch is no pipeline's: with a pipeline filter, only batches it ran in.
            if self._matches(batch, ("project", "env", "batch_id")) and (
                "pipeline" not in self.filters or key in touched
            ):
                self.batches[key] = batch

    def message(self) -> dict[str, Any] | None:
        if not self.runs and not self.batches:
            return None
        runs = list(self.runs.values())
        out = {
            "type": "changes",
            "id": self.last_seq,
            "runs": runs[:MAX_RUNS],
            "runs_count": len(runs),
            "truncated": len(runs) > MAX_RUNS,
            "batches": list(self.batches.values()),
        }
        self.runs.clear()
        self.batches.clear()
        return out


async def _send(websocket: WebSocket, message: dict[str, Any]) -> None:
    await websocket.send_text(orjson.dumps(message, option=orjson.OPT_UTC_Z).decode())


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return


@router.websocket("/ws")
async def changes_socket(websocket: WebSocket) -> None:
    wanted = parse(websocket.query_params)
    await websocket.accept()
    if isinstance(wanted, str):
        await _send(websocket, {"type": "error", "message": wanted})
        await websocket.close(POLICY_VIOLATION, wanted[:120])
        return
    svc: Services = websocket.app.state.services
    bus = svc.bus
    pending = Pending(wanted.filters)
    with bus.subscribe() as sub:
        # Subscribed and replayed in one step of the loop: nothing falls in between.
        backlog = bus.replay(wanted.last_event_id) if wanted.last_event_id is not None else []
        pending.last_seq = bus.last_event_id
        closed = asyncio.ensure_future(_until_closed(websocket))
        getter: asyncio.Future[Change] | None = None
        try:
            await _send(
                websocket,
                {
                    "type": "hello",
                    "id": wanted.last_event_id if backlog else pending.last_seq,
                    "filter": wanted.filters,
                    "interval_s": wanted.interval,
                },
            )
            if backlog is None:
                reason = f"cannot resume after event {wanted.last_event_id}; reload"
                await _send(websocket, {"type": "resync", "id": pending.last_seq, "reason": reason})
            else:
                for change in backlog:
                    pending.add(change)
                if (message := pending.message()) is not None:
                    await _send(websocket, message)
            loop = asyncio.get_running_loop()
            next_send = loop.time() + wanted.interval
            quiet_since = time.monotonic()
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(sub.queue.get())
                wait = next_send - loop.time()
                if wait > 0:
                    either: set[asyncio.Future[Any]] = {getter, closed}
                    done, _ = await asyncio.wait(
                        either, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
                    if closed in done:
                        return
                    if getter in done:
                        pending.add(getter.result())
                        getter = None
                        while not sub.queue.empty():
                            pending.add(sub.queue.get_nowait())
                    continue
                next_send = loop.time() + wanted.interval
                if sub.overflowed:
                    sub.overflowed = False
                    pending.message()  # what it holds is incomplete: drop it
                    reason = "changes may have been missed; reload"
                    await _send(
                        websocket, {"type": "resync", "id": pending.last_seq, "reason": reason}
                    )
                    quiet_since = time.monotonic()
                elif (message := pending.message()) is not None:
                    await _send(websocket, message)
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                    await _send(websocket, {"type": "heartbeat", "id": pending.last_seq})
                    quiet_since = time.monotonic()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            for task in (getter, closed):
                if task is not None and not task.done():
                    task.cancel()
