"""The dashboards' pages in-process: the list, a dashboard, the home-page cookie and what /
serves with it, and the forms behind the list's buttons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowdeck.api.app import create_app
from flowdeck.settings import Settings
from flowdeck.web.dashboards import HOME_COOKIE
from tests.api.conftest import as_json
from tests.conftest import run

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=f"duckdb://{tmp_path / 'flowdeck.duckdb'}"))
    with TestClient(app) as client:
        assert client.post("/api/v1/runs", json=[as_json(run("p1"))]).status_code == 200
        yield client


def title(html: str) -> str:
    return html[html.index("<title>") + 7 : html.index("</title>")]


def test_list_and_dashboard_pages(client: TestClient) -> None:
    listing = client.get("/dashboards", headers=HTML)
    assert listing.status_code == 200
    assert 'href="/dashboards/data-ops">Data Ops</a>' in listing.text
    assert 'aria-current="page">Dashboards</a>' in listing.text
    board = client.get("/dashboards/manager", headers=HTML)
    assert board.status_code == 200
    assert title(board.text) == "Manager · flowdeck"
    assert '<script type="application/json" id="dashboard-spec">' in board.text
    assert "topics=run%2Cbatch%2Calert" in board.text  # the page hears runs and batches
    assert "/static/vendor/gridstack-all.js" in board.text
    missing = client.get("/dashboards/nope", headers=HTML)
    assert missing.status_code == 404
    assert "dashboard &#39;nope&#39; not found" in missing.text


def test_home_page_cookie_decides_what_slash_shows(client: TestClient) -> None:
    assert title(client.get("/", headers=HTML).text) == "Batch b1 · flowdeck"
    made = client.post(
        "/dashboards/manager/home", data={"back": "/dashboards/manager"}, follow_redirects=False
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/dashboards/manager"
    assert client.cookies[HOME_COOKIE] == "manager"
    assert title(client.get("/", headers=HTML).text) == "Manager · flowdeck"
    # The batch dashboard stays at /batches, and any link with a query is still its.
    assert title(client.get("/batches", headers=HTML).text) == "Batch b1 · flowdeck"
    assert title(client.get("/?since=7d", headers=HTML).text) == "Batch b1 · flowdeck"
    assert client.get("/", headers={"Accept": "application/json"}).json()["api"] == "/api/v1"

    # A home page that was deleted: / falls back to the batch dashboard.
    deleted = client.post("/dashboards/manager/delete", follow_redirects=False)
    assert deleted.status_code == 303
    assert HOME_COOKIE not in client.cookies
    client.cookies.set(HOME_COOKIE, "manager")
    assert title(client.get("/", headers=HTML).text) == "Batch b1 · flowdeck"


def test_new_dashboard_form_opens_it_in_edit_mode(client: TestClient) -> None:
    made = client.post("/dashboards/new", data={"title": "Mine"}, follow_redirects=False)
    assert made.status_code == 303
    target = made.headers["location"]
    assert target.startswith("/dashboards/") and target.endswith("?edit=1")
    assert title(client.get(target, headers=HTML).text) == "Mine · flowdeck"
    stop = client.post(
        "/dashboards/data-ops/home", data={"clear": "1", "back": "//evil"}, follow_redirects=False
    )
    assert stop.headers["location"] == "/dashboards"  # only paths of this site
