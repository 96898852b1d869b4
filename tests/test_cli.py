"""The ``flowdeck`` command as a user meets it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx2
import pytest

from tests.servers import FLOWDECK, ServerProcess


def flowdeck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FLOWDECK, *args], capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands() -> None:
    out = flowdeck("--help")
    assert out.returncode == 0
    for word in ("serve", "demo", "POST /api/v1/runs"):
        assert word in out.stdout
    serve = flowdeck("serve", "--help").stdout
    assert "--db URL" in serve and "FLOWDECK_DATABASE_URL" in serve


def test_an_unknown_database_url_is_refused_by_name() -> None:
    out = flowdeck("serve", "--db", "mysql://localhost/x")
    assert out.returncode != 0
    assert "unknown database URL scheme 'mysql'" in out.stderr


@pytest.mark.slow
def test_serve_logs_where_the_data_is(tmp_path: Path) -> None:
    server = ServerProcess("serve", "--data-dir", str(tmp_path), env={"FLOWDECK_DATABASE_URL": ""})
    try:
        server.wait_healthy()
        assert (tmp_path / "flowdeck.duckdb").exists()
        assert httpx2.get(f"{server.base}/api/v1/batches").json() == {"items": []}
    finally:
        log = server.stop()
    assert f"data: duckdb://{tmp_path / 'flowdeck.duckdb'}" in log


@pytest.mark.slow
def test_demo_serves_a_live_estate(tmp_path: Path) -> None:
    server = ServerProcess(
        "demo", "--data-dir", str(tmp_path), "--speed", "200", env={"FLOWDECK_DATABASE_URL": ""}
    )
    try:
        server.wait_healthy(timeout=120)
        with httpx2.Client(base_url=server.base, timeout=30) as client:
            batches = client.get("/api/v1/batches?since=30d").json()["items"]
            assert len(batches) >= 30
            assert {b["env"] for b in batches} >= {"prod", "test", "dev"}
            assert {b["health"] for b in batches} >= {"green", "red"}
            pipelines = client.get("/api/v1/pipelines").json()["items"]
            assert len({p["pipeline"] for p in pipelines}) >= 30
            # The demo's own alert rules; the broken pipeline, the late feeds and the
            # shrunk sell-out file fire them.
            rules = client.get("/api/v1/alert-rules").json()["items"]
            assert {r["name"] for r in rules} >= {"two-failures", "feed-volume-drop", "prod-stale"}
            deadline = time.monotonic() + 60
            expected = {"two-failures", "prod-stale", "feed-volume-drop"}
            kinds: set[str] = set()
            while time.monotonic() < deadline and not expected <= kinds:
                firing = client.get("/api/v1/alerts?state=firing").json()["items"]
                kinds = {a["rule"] for a in firing}
                time.sleep(0.5)
            assert expected <= kinds
    finally:
        log = server.stop()
    # The streaming pipeline reports over HTTP: it stops before the server stops listening,
    # so stopping the demo never has it warn that flowdeck is unreachable.
    assert "unreachable" not in log
    assert "Traceback" not in log
