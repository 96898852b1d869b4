"""The Python SDK against a real server, a server that is down, and one that hangs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest

from flowdeck.sdk import Client, current_run
from tests.servers import free_port, server_on


@pytest.fixture
def duck(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path / 'flowdeck.duckdb'}"


@pytest.fixture
def base(duck: str) -> Iterator[str]:
    with server_on(free_port(), duck) as url:
        yield url


@pytest.fixture
def client(base: str, tmp_path: Path) -> Iterator[Client]:
    c = Client(base, env="prod", spool_dir=tmp_path / "spool", labels={"team": "sales"})
    yield c
    c.close()


def get_run(base: str, run_id: str) -> dict[str, Any]:
    res = httpx2.get(f"{base}/api/v1/runs/{run_id}?history=0")
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


def test_a_run_reports_running_then_success_with_its_figures(base: str, client: Client) -> None:
    with client.run("load_sales", batch_id=20261123, labels={"retailer": "acme"}) as run:
        assert client.flush(5)
        assert get_run(base, run.run_id)["status"] == "RUNNING"
        run.rows_read += 1000
        run.rows_read += 200
        run.rows_written = 1150
        run.rows_invalid += 50
        run.custom_stats["sku_count"] = 48211
        sum(i * i for i in range(200_000))  # some CPU to measure
    assert client.flush(5)
    got = get_run(base, run.run_id)
    assert got["status"] == "SUCCESS"
    assert (got["pipeline"], got["batch_id"], got["env"]) == ("load_sales", "20261123", "prod")
    assert (got["rows_read"], got["rows_written"], got["rows_invalid"]) == (1200, 1150, 50)
    assert got["dq_errors"] == 50
    assert got["labels"] == {"team": "sales", "retailer": "acme"}
    stats = got["custom_stats"]
    assert stats["sku_count"] == 48211
    assert stats["cpu_seconds"] > 0
    assert stats["peak_memory_mb"] > 10
    assert 0 < got["duration_s"] < 5
    # Counters the job never touched are not reported as zero.
    assert got["rows_inserted"] is None and got["rows_updated"] is None


def test_an_exception_fails_the_run_and_is_raised(base: str, client: Client) -> None:
    with pytest.raises(KeyError), client.run("load_sales") as run:
        raise KeyError("sku")
    assert client.flush(5)
    got = get_run(base, run.run_id)
    assert got["status"] == "FAILED"
    assert got["error_message"] == "KeyError: 'sku'"
    assert got["batch_id"] == run.run_id  # no batch given: a batch of its own


def test_fail_by_hand(base: str, client: Client) -> None:
    with client.run("check_orders") as run:
        run.fail("3 checks failed")
    client.flush(5)
    got = get_run(base, run.run_id)
    assert (got["status"], got["error_message"]) == ("FAILED", "3 checks failed")


def test_counters_refuse_nonsense(client: Client) -> None:
    run = client.run("x")
    with pytest.raises(ValueError, match="rows_read must be a whole number ≥ 0, got -1"):
        run.rows_read = -1


def test_decorator_batch_and_async(base: str, client: Client) -> None:
    with client.batch("b-42", labels={"schedule": "daily"}) as batch:

        @batch.job()
        def extract(n: int) -> int:
            run = current_run()
            assert run is not None
            run.rows_read += n
            return n * 2

        @batch.job("transform")
        async def transform_async(n: int) -> int:
            run = current_run()
            assert run is not None
            run.rows_written += n
            await asyncio.sleep(0)
            return n + 1

        async def load() -> None:
            async with batch.run("load") as run:
                run.rows_written = 7

        assert extract(5) == 10
        assert asyncio.run(transform_async(3)) == 4
        asyncio.run(load())
    assert current_run() is None
    assert client.flush(5)
    summary = httpx2.get(f"{base}/api/v1/batches/b-42").json()
    assert (summary["total"], summary["succeeded"], summary["env"]) == (3, 3, "prod")
    runs = httpx2.get(f"{base}/api/v1/batches/b-42/runs").json()["items"]
    by_name = {r["pipeline"]: r for r in runs}
    assert by_name["extract"]["rows_read"] == 5
    assert by_name["transform"]["rows_written"] == 3
    assert by_name["load"]["rows_written"] == 7
    assert by_name["load"]["labels"] == {"team": "sales", "schedule": "daily"}


def test_a_batch_without_an_id_gets_one(client: Client) -> None:
    batch = client.batch()
    assert isinstance(batch.batch_id, str) and len(batch.batch_id) == len("20261123T010000-1a2b3c")


def test_down_then_up_spools_and_resends(duck: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    client = Client(url, spool_dir=spool, backoff_start=0.2, backoff_max=0.5)
    started = time.perf_counter()
    with client.run("load_sales", batch_id="b1") as run:
        run.rows_read = 10
    with pytest.raises(ZeroDivisionError), client.run("load_stock", batch_id="b1") as failed:
        1 / 0  # noqa: B018
    assert time.perf_counter() - started < 0.5  # the pipeline did not wait for flowdeck
    assert client.flush(5)
    assert client.spooled == 4  # RUNNING and the end of each run

    with server_on(port, duck):
        deadline = time.monotonic() + 10
        while client.spooled and time.monotonic() < deadline:
            time.sleep(0.05)  # the client retries on its own, with backoff
        assert client.spooled == 0
        assert get_run(url, run.run_id)["status"] == "SUCCESS"
        assert get_run(url, run.run_id)["rows_read"] == 10
        got = get_run(url, failed.run_id)
        assert (got["status"], got["error_message"]) == (
            "FAILED",
            "ZeroDivisionError: division by zero",
        )
    client.close()


def test_a_later_process_resends_what_an_earlier_one_spooled(duck: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = tmp_path / "spool"
    script = (
        "from flowdeck.sdk import Client\n"
        f"client = Client({url!r}, spool_dir={str(spool)!r})\n"
        "with client.run('nightly', run_id='r-1', batch_id='b9') as run:\n"
        "    run.rows_written = 3\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "flowdeck unreachable" in done.stderr
    assert sum(1 for _ in spool.rglob("*.jsonl")) >= 1

    with server_on(port, duck):
        client = Client(url, spool_dir=spool)  # a new process's client finds the spool
        deadline = time.monotonic() + 10
        while client.spooled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get_run(url, "r-1")["status"] == "SUCCESS"
        assert get_run(url, "r-1")["rows_written"] == 3
        client.close()


def test_a_hanging_server_does_not_slow_the_pipeline(tmp_path: Path) -> None:
    # A socket that accepts connections and never answers.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = Client(url, spool_dir=tmp_path / "spool", timeout=0.5)
        started = time.perf_counter()
        for i in range(20):
            with client.run("tick", run_id=f"t{i}"):
                pass
        assert time.perf_counter() - started < 0.2
        started = time.perf_counter()
        client.close(timeout=1.0)
        assert time.perf_counter() - started < 2.0
        assert client.spooled == 40
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_invalid_reports_are_dropped_alone(base: str, client: Client) -> None:
    with client.run("ok") as good:
        pass
    client._send({"run_id": "bad", "pipeline": "x", "rows_read": -5})
    assert client.flush(5)
    assert get_run(base, good.run_id)["status"] == "SUCCESS"
    assert client.sender.dropped == 1
    assert client.spooled == 0


def test_the_sdk_never_imports_the_server() -> None:
    code = (
        "import sys, flowdeck.sdk\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'pydantic', 'duckdb', 'psycopg', 'orjson', 'pyarrow')"
        " or m.startswith(('flowdeck.api', 'flowdeck.store', 'flowdeck.ingest'))]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_example_runs(base: str, tmp_path: Path) -> None:
    example = Path(__file__).parents[2] / "examples" / "sdk_job.py"
    env = {"FLOWDECK_URL": base, "FLOWDECK_SPOOL_DIR": str(tmp_path / "spool"), "PATH": ""}
    out = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    batch_id = out.stdout.split()[1].rstrip(":")
    summary = httpx2.get(f"{base}/api/v1/batches/{batch_id}").json()
    assert (summary["total"], summary["succeeded"], summary["failed"]) == (4, 3, 1)
    assert summary["env"] == "dev"
    assert summary["dq_errors"] > 0
    now = datetime.now(UTC)
    body = {
        "metric": "orders.extracted",
        "aggregation": "sum",
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "step": "1d",
        "group_by": ["source"],
    }
    series = httpx2.post(f"{base}/api/v1/metrics/query", json=body).json()["series"]
    assert [(s["tags"], [p[1] for p in s["points"]]) for s in series] == [
        ({"source": "shop"}, [10_000])
    ]
    body |= {"metric": "orders.amount", "aggregation": "count"}
    series = httpx2.post(f"{base}/api/v1/metrics/query", json=body).json()["series"]
    assert sum(p[1] for p in series[0]["points"]) == 10_000
