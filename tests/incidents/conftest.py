"""Fixtures of the incident tests: the API client of tests/api (both backends) with the
background detection off, so each test moves detection itself (``tick``)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from flowdeck.incidents.detect import Outcome
from tests.api.conftest import MakeClient, make_client, services_of

__all__ = ["client", "make_client", "tick"]


@pytest.fixture
def client(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("FLOWDECK_INCIDENT_TICK_SECONDS", "0")
    return make_client()


def tick(client: TestClient) -> Outcome:
    """One detection tick inside the app, at its clock."""
    svc = services_of(client)
    assert svc.incidents is not None
    out: Outcome = client.portal.call(svc.incidents.tick, svc.writer)  # type: ignore[union-attr]
    return out
