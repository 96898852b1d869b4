"""The built-in dashboards: created on the first start, never twice, not again once deleted;
every widget of theirs answers data."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from flowdeck.dashboards.templates import TEMPLATES, template
from tests.api.conftest import MakeClient, as_json
from tests.conftest import run

API = "/api/v1/dashboards"


def ids(client: TestClient) -> list[str]:
    return [d["id"] for d in client.get(API).json()["items"]]


def restart(make_client: MakeClient, client: TestClient) -> TestClient:
    client.__exit__(None, None, None)
    return make_client()


def test_templates_are_created_once_and_stay_deleted(make_client: MakeClient) -> None:
    client = make_client()
    assert ids(client) == ["data-ops", "manager"]
    assert client.get(f"{API}/manager").json()["title"] == "Manager"

    client = restart(make_client, client)
    assert ids(client) == ["data-ops", "manager"]  # not duplicated
    assert client.get(f"{API}/manager").json()["version"] == 1

    # Edited and deleted ones are the user's: a restart neither resets nor recreates them.
    edited = client.get(f"{API}/data-ops").json()
    edited["title"] = "Data Ops (ours)"
    assert client.put(f"{API}/data-ops", json=edited).status_code == 200
    assert client.delete(f"{API}/manager").status_code == 204
    client = restart(make_client, client)
    assert ids(client) == ["data-ops"]
    assert client.get(f"{API}/data-ops").json()["title"] == "Data Ops (ours)"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_widget_answers(client: TestClient, name: str) -> None:
    reports = [run(f"p{i}", status="FAILED" if i == 0 else "SUCCESS") for i in range(3)]
    assert client.post("/api/v1/runs", json=[as_json(r) for r in reports]).status_code == 200
    board = template(name)
    assert board.widgets
    for widget in board.widgets:
        body = {"widget": widget.model_dump(mode="json"), "time_range": {"last": "30d"}}
        answer = client.post(f"{API}/widget-data", json=body)
        assert answer.status_code == 200, (widget.id, answer.text)
