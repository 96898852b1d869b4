from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from flowdeck.api.app import create_app
from flowdeck.settings import Settings
from tests.servers import wait_healthy


@contextmanager
def server_on(port: int, db_url: str, **settings: Any) -> Iterator[str]:
    """The app under uvicorn in a thread, on a port chosen beforehand (so that a client can
    be pointed at it while it is still down); ``settings`` override the defaults."""
    app = create_app(Settings(database_url=db_url, **settings))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(15)
