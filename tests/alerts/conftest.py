from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowdeck.alerts.config import AlertsFile
from flowdeck.alerts.service import AlertOptions, AlertService
from flowdeck.events import Change, EventBus
from flowdeck.ingest.writer import Writer
from flowdeck.store import Store
from flowdeck.store.sql import SqlStore
from tests.alerts.receivers import HttpReceiver, http_receiver
from tests.api.conftest import client, make_client  # noqa: F401  (fixtures used here too)
from tests.conftest import FixedClock


class RecordingBus(EventBus):
    """Keeps what the writer publishes, for the test to hand to the engine."""

    def __init__(self) -> None:
        super().__init__()
        self.changes: list[Change] = []

    def publish(
        self, runs: Sequence[dict[str, Any]], batches: tuple[dict[str, Any], ...]
    ) -> Change | None:
        change = self.deliver(runs, batches)
        self.changes.append(change)
        return change

    def take(self) -> list[Change]:
        out, self.changes = self.changes, []
        return out


@dataclass
class Rig:
    """A store, the writer, alerting and an HTTP receiver, driven by hand with a fixed clock."""

    store: Store
    writer: Writer
    bus: RecordingBus
    alerts: AlertService
    clock: FixedClock
    receiver: HttpReceiver
    file: AlertsFile = field(default_factory=lambda: AlertsFile(""))

    def report(self, *reports: dict[str, Any]) -> None:
        """Write runs and evaluate what the commit changed, as the app does."""
        self.writer.submit(list(reports)).result()
        self.alerts.step(self.bus.take())

    def tick(self) -> None:
        self.alerts.step(tick=True)

    def deliver(self) -> None:
        self.alerts.deliver_due(wait=True)

    def webhook(self, name: str = "hook", secret: str | None = "s3cret", **extra: Any) -> None:
        data: dict[str, Any] = {
            "name": name,
            "type": "webhook",
            "url": self.receiver.url(f"/{name}"),
        }
        if secret:
            data["secret"] = secret
        self.alerts.put_channel({**data, **extra})

    def rule(self, **data: Any) -> None:
        data.setdefault("group_wait", "0s")
        data.setdefault("channels", ["hook"])
        self.alerts.put_rule(data)


@pytest.fixture
def rig(store: Store, clock: FixedClock) -> Iterator[Rig]:
    assert isinstance(store, SqlStore)
    bus = RecordingBus()
    writer = Writer(store, bus, clock=clock)
    writer.start()
    options = AlertOptions(public_url="http://flowdeck.test", retry_base_s=30, retry_max_s=600)
    alerts = AlertService(store, clock=clock, options=options)
    with http_receiver() as receiver:
        try:
            yield Rig(store, writer, bus, alerts, clock, receiver)
        finally:
            alerts.close()
            writer.stop()
