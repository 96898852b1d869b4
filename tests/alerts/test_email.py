"""The e-mail notifier against a real SMTP server (aiosmtpd) over STARTTLS and implicit TLS,
with a certificate made for the test by a test CA (trustme): trusted through the channel's
``ca_file``, refused without it; a wrong password and a silent server end up in the
delivery log within the channel's timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from flowdeck.alerts.notify import DeliveryError, deliver
from flowdeck.alerts.rules import parse_channel
from flowdeck.errors import InvalidInput
from tests.alerts.conftest import Rig
from tests.alerts.receivers import smtp_receiver
from tests.alerts.test_notifiers import NOW, sample
from tests.servers import free_port


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def mail_channel(port: int, tls: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "tls": tls,
        "from": "flowdeck@example.com",
        "to": ["ops@example.com"],
        "timeout": "3s",
        **extra,
    }


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_email_over_tls_with_login(tls: str, server_context: Any, ca_file: str) -> None:
    with smtp_receiver(auth=("flowdeck", "pw"), tls=tls, context=server_context) as smtp:
        channel = parse_channel(
            mail_channel(smtp.port, tls, ca_file=ca_file, username="flowdeck", password="pw")
        )
        assert deliver(channel, sample(), NOW) is None
        (message,) = smtp.messages
        assert smtp.encrypted == [True]
        assert smtp.logins == [("flowdeck", "pw")]
        assert message["Subject"] == "[FIRING:1] acme-failing (critical)"
        assert smtp.envelopes == [("flowdeck@example.com", ["ops@example.com"])]


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_a_certificate_from_an_untrusted_ca_is_refused(tls: str, server_context: Any) -> None:
    with smtp_receiver(tls=tls, context=server_context) as smtp:
        channel = parse_channel(mail_channel(smtp.port, tls))
        with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED"):
            deliver(channel, sample(), NOW)
        assert smtp.messages == []


def test_a_certificate_for_another_host_is_refused(
    ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.com").configure_cert(context)
    with smtp_receiver(tls="ssl", context=context) as smtp:
        channel = parse_channel(mail_channel(smtp.port, "ssl", ca_file=ca_file))
        with pytest.raises(DeliveryError, match=r"IP address mismatch"):
            deliver(channel, sample(), NOW)
        assert smtp.messages == []


def test_starttls_asked_of_a_server_without_it() -> None:
    with smtp_receiver() as smtp:
        channel = parse_channel(mail_channel(smtp.port, "starttls"))
        with pytest.raises(
            DeliveryError, match=r"^SMTP 127\.0\.0\.1:\d+: STARTTLS extension not supported"
        ):
            deliver(channel, sample(), NOW)
        assert smtp.messages == []


def test_a_wrong_password_is_in_the_delivery_log(
    rig: Rig, server_context: Any, ca_file: str
) -> None:
    with smtp_receiver(auth=("flowdeck", "pw"), tls="starttls", context=server_context) as smtp:
        rig.alerts.put_channel(
            mail_channel(smtp.port, "starttls", ca_file=ca_file, username="flowdeck", password="no")
        )
        started = time.monotonic()
        notification, delivery = rig.alerts.send_test("mail")
        assert time.monotonic() - started < 3
        assert smtp.logins == [("flowdeck", "no")]
        assert smtp.messages == []
    assert not delivery.ok
    assert delivery.error == "SMTP 535 from 127.0.0.1: 5.7.8 Authentication credentials invalid"
    assert delivery.status_code == 535
    (logged,) = rig.alerts.db.deliveries(notification.id)
    assert logged.error == delivery.error
    health = rig.alerts.db.channel_health()["mail"]
    assert health["last_error"] == delivery.error
    assert health["failures_since_success"] == 1


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never says a word."""
    with socket.create_server(("127.0.0.1", free_port()), backlog=4) as server:
        yield server.getsockname()[1]


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_a_server_that_never_answers_times_out(rig: Rig, silent_server: int, tls: str) -> None:
    rig.alerts.put_channel(mail_channel(silent_server, tls, timeout="0.5s"))
    started = time.monotonic()
    _, delivery = rig.alerts.send_test("mail")
    assert time.monotonic() - started < 3
    assert delivery.error == f"SMTP 127.0.0.1:{silent_server}: no answer within 0.5 s"


def test_the_ca_file_is_checked_when_the_channel_is_defined(ca_file: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_channel(mail_channel(25, "starttls", ca_file="/no/such/ca.pem"))
    assert str(info.value) == "channel[mail].ca_file: no readable file '/no/such/ca.pem'"
    with pytest.raises(InvalidInput) as info:
        parse_channel(mail_channel(25, "none", ca_file=ca_file))
    assert str(info.value) == "channel[mail].ca_file: needs tls: starttls or ssl"
    channel = parse_channel(mail_channel(25, "ssl", ca_file=ca_file))
    assert channel.out()["ca_file"] == ca_file
