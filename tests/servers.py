"""Real servers for the tests where the process or socket boundary is what is tested."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import uvicorn

from flowdeck.api.app import create_app
from flowdeck.settings import Settings

FLOWDECK = str(Path(sys.executable).with_name("flowdeck"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(
    base: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} did not become healthy in {timeout}s")


@contextmanager
def threaded_server(db_url: str) -> Iterator[str]:
    """The app under uvicorn in a thread of this process (real sockets, shared memory)."""
    with server_on(free_port(), db_url) as base:
        yield base


@contextmanager
def server_on(port: int, db_url: str, **settings: Any) -> Iterator[str]:
    """Like :func:`threaded_server`, on a port chosen beforehand (so that a client can be
    pointed at it while it is still down); ``settings`` override the defaults."""
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


class ServerProcess:
    """``flowdeck <command>`` as a child process."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [FLOWDECK, *args, "--port", str(self.port), "--log-level", "warning"],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_healthy(self, timeout: float = 60.0) -> ServerProcess:
        wait_healthy(self.base, timeout, self.proc)
        return self

    def kill9(self) -> str:
        self.proc.send_signal(signal.SIGKILL)
        out, _ = self.proc.communicate(timeout=10)
        return out or ""

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        out, _ = self.proc.communicate()
        return out or ""
