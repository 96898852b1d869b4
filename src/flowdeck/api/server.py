"""flowdeck under uvicorn. Before it stops listening, the server stops what reaches it over
HTTP from inside its own process (the demo's streaming pipeline, through the SDK): stopped
after, as the app's shutdown stops it, that client found the port closed and warned that it
kept its reports for later."""

from __future__ import annotations

import logging
import socket
import sys
from contextlib import suppress
from typing import Final

import uvicorn
from fastapi import FastAPI

from flowdeck.api.services import Services

log = logging.getLogger("flowdeck")

# uvicorn's own exit status when the server could not start (a port in use, a failed start).
STARTUP_FAILURE: Final = 3


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        svc: Services | None = getattr(self.app.state, "services", None)
        for stop in svc.stopping if svc is not None else ():
            try:
                await stop()
            except Exception:
                log.exception("stopping before the server closes")
        await super().shutdown(sockets=sockets)


def run_server(app: FastAPI, config: uvicorn.Config) -> None:
    """Serve ``app`` until interrupted, as ``uvicorn.run`` does; exit with uvicorn's status
    when it cannot start."""
    server = Server(config, app)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
