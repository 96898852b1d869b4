"""Real receivers for notifications: an HTTP server standing in for Slack, Teams, PagerDuty,
Opsgenie and generic webhooks, and an SMTP server (aiosmtpd), plain, with STARTTLS or with
implicit TLS."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HttpReceiver:
    base: str = ""
    requests: list[Received] = field(default_factory=list)
    # Status codes to answer with before answering 200 (a receiver that is down for a while).
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        got: list[Received] = wait_until(
            lambda: (lambda got: got if len(got) >= count else None)(
                self.on(path) if path is not None else list(self.requests)
            ),
            timeout,
            f"{count} request(s) to {path or 'the receiver'}",
        )
        return got


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                status = receiver.failures.pop(0) if receiver.failures else 200
                if status == 200:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
            answer = b"ok" if status == 200 else b"receiver is down"
            self.send_response(status)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    receiver.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class SmtpReceiver:
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    # Per message: whether the session that sent it was encrypted.
    encrypted: list[bool] = field(default_factory=list)


@contextmanager
def smtp_receiver(
    auth: tuple[str, str] | None = None,
    *,
    tls: str = "none",
    context: ssl.SSLContext | None = None,
) -> Iterator[SmtpReceiver]:
    """``tls``: ``none``, ``starttls`` (offered and required before mail and AUTH) or
    ``ssl`` (implicit TLS from the first byte), with the server ``context``."""
    receiver = SmtpReceiver()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            receiver.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
            receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            receiver.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        login = (data.login.decode(), data.password.decode())
        receiver.logins.append(login)
        # handled=False: aiosmtpd answers a refusal with 535 itself (else it says nothing).
        return AuthResult(success=auth is not None and login == auth, handled=False)

    kwargs: dict[str, Any] = {}
    if auth is not None:
        # Without TLS, plain-text AUTH on a local test server. aiosmtpd counts only STARTTLS
        # as TLS (not an implicit-TLS listener), so only then may it insist on it.
        kwargs = {"authenticator": authenticator, "auth_require_tls": tls == "starttls"}
    if tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif tls == "ssl":
        kwargs.update(ssl_context=context)
    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    receiver.port = controller.port
    try:
        yield receiver
    finally:
        controller.stop()
