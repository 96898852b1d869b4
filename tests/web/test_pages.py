"""The pages in-process (no browser): what each serves, fragments for htmx, errors as HTML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowdeck.api.app import create_app
from flowdeck.settings import Settings
from flowdeck.web.templating import STATIC
from tests.api.conftest import as_json
from tests.conftest import T0, FixedClock, run

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"duckdb://{tmp_path / 'flowdeck.duckdb'}"),
        clock=FixedClock(T0 + timedelta(hours=2)),
    )
    with TestClient(app) as client:
        reports = [
            run(f"p{i:02d}", batch_id="b2", rows_read=1000 * (i + 1), rows_invalid=i * 30)
            for i in range(30)
        ]
        reports.append(
            run("boom", batch_id="b2", status="FAILED", error_message="Traceback: it broke")
        )
        reports.append(run("slow", batch_id="b2", status="RUNNING", ended_at=None))
        reports.append(run("x", batch_id="b1", env="dev", started_at=T0 - timedelta(days=1)))
        answer = client.post("/api/v1/runs", json=[as_json(r) for r in reports])
        assert answer.status_code == 200
        yield client


def test_root_is_json_for_api_clients_and_the_dashboard_for_browsers(client: TestClient) -> None:
    for accept in ("application/json", "*/*", "application/json, text/html"):
        answer = client.get("/", headers={"Accept": accept})
        assert answer.json()["api"] == "/api/v1", accept
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Batch b2 · flowdeck</title>" in page.text  # the newest batch
    assert 'id="live-status"' in page.text
    assert '<option value="b2" selected>' in page.text
    assert "32 processes" in page.text


def test_the_health_badge_gives_the_batchs_own_reason(client: TestClient) -> None:
    def badge(batch: str) -> str:
        page = client.get(f"/?batch={batch}", headers=HTML).text
        match = re.search(r'class="badge health-(\w+)">.*?</span>([^<]*)</span>', page)
        assert match is not None
        return f"{match.group(1)}: {match.group(2)}"

    assert badge("b2") == "red: Red: 1 process failed, 1 still running or pending"
    assert badge("b1") == "green: Green: every process succeeded"
    running = [run(f"r{i}", batch_id="b3", status="RUNNING", ended_at=None) for i in range(3)]
    done = [run(f"d{i}", batch_id="b3") for i in range(27)]
    client.post("/api/v1/runs", json=[as_json(r) for r in running + done])
    # 27 of 30 is 90 %: no failure yet, the rest still running.
    assert badge("b3") == "yellow: Yellow: no failures so far, 3 still running or pending"
    client.post("/api/v1/runs", json=[as_json(run("r9", batch_id="b3", status="PENDING"))])
    # 27 of 31 is under 90 % with nothing failed: red, and the page says why.
    assert badge("b3") == "red: Red: 27 of 31 succeeded, under 90 %, 4 still running or pending"


def test_htmx_gets_only_the_part_it_swaps(client: TestClient) -> None:
    headers = {**HTML, "HX-Request": "true", "HX-Target": "runs-data"}
    part = client.get("/?batch=b2&sort=rows_read&order=desc", headers=headers)
    assert part.status_code == 200
    assert "<html" not in part.text
    assert part.text.lstrip().startswith('<div id="runs-data"')
    assert 'id="batch-cards"' in part.text and 'hx-swap-oob="true"' in part.text
    assert part.text.index(">p29<") < part.text.index(">p00<")  # the sort holds
    table = client.get("/?batch=b2", headers={**headers, "HX-Target": "runs"})
    assert table.text.lstrip().startswith('<section id="runs"')
    # Back/forward asks for the whole page even from htmx.
    restore = client.get("/", headers={**headers, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text


def test_the_table_shows_filters_and_pages(client: TestClient) -> None:
    page = client.get("/?batch=b2&status=FAILED", headers=HTML).text
    assert "1 process with status failed" in page
    assert ">boom<" in page and ">p01<" not in page
    paged = client.get("/?batch=b2&page_size=25&page=2", headers=HTML).text
    assert "page 2 of 2" in paged
    assert "32 processes" in paged


def test_dq_warnings_are_marked_in_table_and_view(client: TestClient) -> None:
    page = client.get("/?batch=b2&page_size=100", headers=HTML).text
    # p01 rejects 30 of 2,000 rows (1.5 %): a warning; p00 rejects nothing.
    assert page.count('class="dq-flag"') == 29
    assert "over 1 %" in page
    dq = client.get("/batches/b2/dq", headers=HTML)
    assert dq.status_code == 200
    assert "Processes over 1 % DQ errors, worst first" in dq.text
    assert dq.text.index(">p29<") < dq.text.index(">p01<")


def test_run_page(client: TestClient) -> None:
    page = client.get("/runs/b2:boom", headers=HTML)
    assert page.status_code == 200
    assert "Traceback: it broke" in page.text
    assert 'data-chart="run-duration"' in page.text
    assert "/static/vendor/echarts.min.js" in page.text


def test_trends_page(client: TestClient) -> None:
    page = client.get("/trends?since=30d&env=prod", headers=HTML)
    assert page.status_code == 200
    assert 'data-chart="trend-success"' in page.text
    assert '<option value="prod" selected>' in page.text


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/runs/nope", 404, "run &#39;nope&#39; not found"),
        ("/?sort=colour", 422, "sort: unknown column"),
        ("/?batch=nope", 404, "batch &#39;nope&#39; not found"),
        ("/batches/nope/dq", 404, "batch &#39;nope&#39; not found"),
        ("/trends?since=1y", 422, "since: must be 7d or 30d"),
    ],
)
def test_errors_are_pages_too(client: TestClient, path: str, status: int, text: str) -> None:
    answer = client.get(path, headers=HTML)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert text in answer.text


def test_an_empty_window_says_so(client: TestClient) -> None:
    page = client.get("/?since=24h&env=dev", headers=HTML).text
    assert "No batches in this window" in page


def test_static_files_are_served(client: TestClient) -> None:
    assert client.get("/static/app.js").status_code == 200
    css = client.get("/static/app.css")
    assert css.headers["content-type"].startswith("text/css")
    if not (STATIC / "vendor" / "htmx.min.js").is_file():
        pytest.skip("front-end packages not built (scripts/build-ui)")
    assert client.get("/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/static/vendor/echarts.min.js").status_code == 200


def test_a_pages_stream_starts_where_the_page_read_its_data(client: TestClient) -> None:
    """Changes that land while the page renders are replayed to it, not missed."""
    bus = client.app.state.services.bus  # type: ignore[attr-defined]
    # Read on the loop, as the property asks: the fixture's commit hands its change to the
    # loop from the writer thread, and that may not have happened yet on this thread's clock.
    before = client.portal.call(lambda: bus.last_event_id)  # type: ignore[union-attr]
    page = client.get("/", headers=HTML).text
    assert f"last_event_id={before}" in page
    assert f"topics=alert&amp;last_event_id={before}" in page
