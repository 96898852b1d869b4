"""The server stops what reaches it over HTTP from inside the process while it still
listens (api/server.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx2
import pytest
import uvicorn

from flowdeck.api.app import create_app
from flowdeck.api.server import STARTUP_FAILURE, Server, run_server
from flowdeck.api.services import Services
from flowdeck.settings import Settings
from tests.servers import free_port, wait_healthy


@asynccontextmanager
async def _idle() -> AsyncIterator[None]:
    yield


def test_what_stops_first_still_reaches_the_server(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    answers: list[int] = []

    def companion(svc: Services) -> AbstractAsyncContextManager[None]:
        async def stop() -> None:
            reply = await asyncio.to_thread(httpx2.get, f"{base}/healthz", timeout=5)
            answers.append(reply.status_code)

        svc.stopping.append(stop)
        return _idle()

    app = create_app(
        Settings(database_url=f"duckdb://{tmp_path / 'f.duckdb'}"), companions=[companion]
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = Server(config, app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_healthy(base)
    server.should_exit = True
    thread.join(15)
    assert not thread.is_alive()
    assert answers == [200]


def test_a_server_that_cannot_start_exits_with_uvicorns_status(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"duckdb://{tmp_path / 'f.duckdb'}"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
        with pytest.raises(SystemExit) as exc:
            run_server(app, config)
    assert exc.value.code == STARTUP_FAILURE
