from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from flowdeck.api.app import create_app
from flowdeck.api.services import Services
from flowdeck.settings import Settings
from tests.conftest import FixedClock

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(db_url: str, clock: FixedClock) -> Iterator[MakeClient]:
    """Start the app (lifespan included) on the test database, with any settings changed."""
    clients: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        app = create_app(Settings(database_url=db_url, **settings), clock=clock)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()


def services_of(client: TestClient) -> Services:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    return svc


def as_json(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in report.items()}
