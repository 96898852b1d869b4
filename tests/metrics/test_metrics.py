"""GET /metrics: the exposition format, the figures in it, and a real Prometheus scraping it."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from flowdeck.prometheus import Family, exposition
from tests.api.conftest import as_json, services_of
from tests.conftest import T0, need, run
from tests.servers import free_port, threaded_server

RUNS = [
    run("load_sales", "b1", rows_written=990),
    run("load_stock", "b1", status="FAILED", run_id="b1:stock"),
    run(
        "load_stock",
        "b2",
        status="FAILED",
        run_id="b2:stock",
        started_at=T0 + timedelta(days=1),
        ended_at=T0 + timedelta(days=1, minutes=3),
    ),
]


def samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_the_format() -> None:
    family = Family("x_total", "help with a \\ and\na newline", "counter")
    family.add(3, pipeline='say "hi"\\n')
    family.add(0.25)
    assert exposition([family]) == (
        "# HELP x_total help with a \\\\ and\\na newline\n"
        "# TYPE x_total counter\n"
        'x_total{pipeline="say \\"hi\\"\\\\n"} 3\n'
        "x_total 0.25\n"
    )


def test_metrics_carry_health_and_pipeline_state(client: TestClient) -> None:
    assert client.post("/api/v1/runs", json=[as_json(r) for r in RUNS]).status_code == 200
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    got = samples(res.text)
    stock = 'project="default",pipeline="load_stock",env="prod"'
    sales = 'project="default",pipeline="load_sales",env="prod"'
    assert got[f"flowdeck_pipeline_consecutive_failures{{{stock}}}"] == 2
    assert got[f"flowdeck_pipeline_consecutive_failures{{{sales}}}"] == 0
    assert got[f'flowdeck_pipeline_last_run_status{{{stock},status="FAILED"}}'] == 1
    assert got[f'flowdeck_pipeline_last_run_status{{{stock},status="SUCCESS"}}'] == 0
    assert got[f"flowdeck_pipeline_last_success_timestamp_seconds{{{sales}}}"] == (
        (T0 + timedelta(minutes=10)).timestamp()
    )
    assert f"flowdeck_pipeline_last_success_timestamp_seconds{{{stock}}}" not in got
    assert got[f"flowdeck_pipeline_last_run_duration_seconds{{{stock}}}"] == 180
    assert got[f"flowdeck_pipeline_last_run_rows_written{{{sales}}}"] == 990
    assert got[f"flowdeck_pipeline_runs{{{stock}}}"] == 2
    assert got["flowdeck_runs_written_total"] == 3
    assert got["flowdeck_writer_queue_depth"] == 0
    assert got["flowdeck_database_up"] == 1
    assert "flowdeck_stream_clients" in got
    assert "flowdeck_last_commit_seconds" in got
    # Bounded label sets: nothing keyed by run or batch.
    assert "run_id" not in res.text and "batch_id" not in res.text


def test_metrics_count_the_pipeline_states_kept_back(client: TestClient) -> None:
    store = services_of(client).store
    kept = getattr(store, "deferred", None)
    if kept is not None:  # DuckDB: nothing is written meanwhile
        kept.flush_after = kept.idle_flush = 3600.0
    for batch in ("b1", "b2", "b3"):
        res = client.post("/api/v1/runs", json=[as_json(run("load_sales", batch))])
        assert res.status_code == 200
    got = samples(client.get("/metrics").text)
    # The first run inserts the pipeline; the next ones' states wait (PostgreSQL: never).
    assert got["flowdeck_pipeline_states_kept_back"] == (1 if kept is not None else 0)
    assert got['flowdeck_pipeline_runs{project="default",pipeline="load_sales",env="prod"}'] == 3


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        need("the Debian package prometheus is not installed (requirements/apt-dev.txt)")
    assert binary is not None
    return binary


@pytest.fixture
def flowdeck_with_runs(tmp_path: Path) -> Iterator[str]:
    with threaded_server(f"duckdb://{tmp_path / 'flowdeck.duckdb'}") as base:
        res = httpx2.post(f"{base}/api/v1/runs", json=[as_json(r) for r in RUNS])
        assert res.status_code == 200
        yield base


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    res = httpx2.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=5)
    assert res.status_code == 200, res.text
    result: list[dict[str, Any]] = res.json()["data"]["result"]
    return result


@pytest.mark.slow
def test_a_real_prometheus_scrapes_flowdeck(
    prometheus_binary: str, flowdeck_with_runs: str, tmp_path: Path
) -> None:
    target = flowdeck_with_runs.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: flowdeck\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    prom = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        failures: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                failures = query(
                    prom, 'flowdeck_pipeline_consecutive_failures{pipeline="load_stock"}'
                )
            except httpx2.TransportError:
                failures = []
            if failures:
                break
            time.sleep(0.3)
        assert failures, "Prometheus never stored a scrape of flowdeck"
        assert failures[0]["metric"]["env"] == "prod"
        assert failures[0]["value"][1] == "2"
        targets = httpx2.get(f"{prom}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]
        failed = query(prom, 'flowdeck_pipeline_last_run_status{status="FAILED"} == 1')
        assert [r["metric"]["pipeline"] for r in failed] == ["load_stock"]
        assert query(prom, "flowdeck_runs_written_total")[0]["value"][1] == "3"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()
