"""The metrics explorer in-process: the form from the URL, the series, the CSV, the
problems of a bad link or a step too fine for the range."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from flowdeck.api.app import create_app
from flowdeck.settings import Settings
from tests.api.conftest import as_json
from tests.conftest import T0, FixedClock, run

HTML = {"Accept": "text/html"}
NOW = T0 + timedelta(hours=2)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"duckdb://{tmp_path / 'flowdeck.duckdb'}"), clock=FixedClock(NOW)
    )
    with TestClient(app) as client:
        t = int(T0.timestamp())
        body = [
            {
                "name": "api.latency_ms",
                "tags": {"host": host, "region": region},
                "times": [t - 3600 + i * 60 for i in range(60)],
                "values": [base + i for i in range(60)],
            }
            for host, region, base in (("a", "eu", 10.0), ("b", "eu", 20.0), ("c", "us", 30.0))
        ]
        assert client.post("/api/v1/metrics/points", json=body).status_code == 200
        runs = [run("load", batch_id="b1"), run("load", batch_id="b2", env="dev")]
        assert client.post("/api/v1/runs", json=[as_json(r) for r in runs]).status_code == 200
        yield client


def test_the_page_offers_every_metric_and_keeps_the_choice(client: TestClient) -> None:
    page = client.get("/explore", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert '<a href="/explore" aria-current="page">Metrics</a>' in text
    # The only reported metric is the default; the run metrics are offered too.
    assert '<option value="api.latency_ms" selected>api.latency_ms (3 series)</option>' in text
    assert '<option value="runs.success_rate">runs.success_rate</option>' in text
    assert '<option value="24h" selected>' in text
    for tag in ("host", "region"):
        assert f'name="group_by" value="{tag}"' in text
    assert "1 series · step 5m · from the 5m rollup" in text
    assert 'data-chart="explore"' in text


def test_group_by_gives_one_series_per_group(client: TestClient) -> None:
    url = "/explore?metric=api.latency_ms&aggregation=max&group_by=region&step=1h&chart=bar"
    text = client.get(url, headers=HTML).text
    assert "2 series · step 1h · from the 1h rollup" in text
    assert 'value="region" id="group-2" checked' in text
    assert '<option value="bar" selected>' in text
    assert '<option value="max" selected>' in text
    assert '"chart":"bar"' in text and '"name":"region=eu"' in text and '"name":"region=us"' in text
    # The table: one row per hour, one column per series; max of eu is host b's last value.
    assert (
        '<th scope="col" class="num">region=eu</th><th scope="col" class="num">region=us</th>'
        in (text)
    )
    assert '<td class="num">79</td><td class="num">89</td>' in text
    # The CSV link repeats the selection.
    assert re.search(r'id="csv-link" href="/explore\.csv\?metric=api\.latency_ms&amp;', text)


def test_csv_has_the_shown_series(client: TestClient) -> None:
    answer = client.get(
        "/explore.csv?metric=api.latency_ms&aggregation=count&group_by=host&step=1h"
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="api.latency_ms-count.csv"' in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows == [
        ["time", "host", "count"],
        ["2026-11-20T00:00:00Z", "a", "60"],
        ["2026-11-20T00:00:00Z", "b", "60"],
        ["2026-11-20T00:00:00Z", "c", "60"],
    ]


def test_run_metrics_and_a_custom_range(client: TestClient) -> None:
    url = (
        "/explore?metric=runs.count&group_by=env&since=custom&from=2026-11-19&to=2026-11-20&step=1d"
    )
    text = client.get(url, headers=HTML).text
    assert '<option value="count" selected>' in text  # the natural aggregation of runs.count
    assert "2 series · step 1d · from the run records" in text
    assert "2026-11-19 00:00:00 to 2026-11-21 00:00:00 UTC" in text
    assert '<input id="from" name="from" type="date" value="2026-11-19">' in text
    assert "&#34;step&#34;: 86400" in text  # the query for the API, shown in the page


def test_a_step_too_fine_is_said_beside_the_form(client: TestClient) -> None:
    page = client.get("/explore?metric=api.latency_ms&since=30d&step=1m", headers=HTML)
    assert page.status_code == 200
    assert 'role="alert">step: gives 43200 buckets over the range; at most 10000' in page.text
    assert 'id="metric"' in page.text and "csv-link" not in page.text


def test_bad_links_name_the_parameter(client: TestClient) -> None:
    page = client.get("/explore?metric=runs.nope&aggregation=median&since=2w", headers=HTML)
    assert page.status_code == 422
    assert "metric: unknown run metric" in page.text
    assert "aggregation: must be one of avg, sum, count, min, max, p50, p95, p99" in page.text
    assert "since: must be one of 24h, 7d, 30d, custom" in page.text
    empty = client.get("/explore?metric=nothing.here", headers=HTML)
    assert empty.status_code == 200
    assert "No points of nothing.here in this range." in empty.text
    assert '<option value="nothing.here" selected>nothing.here (no series)</option>' in empty.text
