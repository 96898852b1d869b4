"""The SDK's reviewer against a real server: the server's rate is used, exactly the sampled
events arrive (once, however often offered), and a flowdeck that is down costs the pipeline
nothing: samples are spooled and arrive once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from flowdeck.review.sampling import is_sampled
from flowdeck.sdk import Client
from tests.servers import free_port, server_on


@pytest.fixture
def duck(tmp_path: Path) -> str:
    return f"duckdb://{tmp_path / 'flowdeck.duckdb'}"


@pytest.fixture
def base(duck: str) -> Iterator[str]:
    with server_on(free_port(), duck) as url:
        yield url


def samples(base: str, **params: Any) -> list[dict[str, Any]]:
    answer = httpx2.get(
        f"{base}/api/v1/review/samples", params={"page_size": 500, **params}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_offer_sends_exactly_the_sampled_events_at_the_servers_rate(
    base: str, tmp_path: Path
) -> None:
    put = httpx2.put(f"{base}/api/v1/review/settings/market_signals", json={"rate": 0.02})
    assert put.status_code == 200
    with Client(base, spool_dir=tmp_path / "spool") as client:
        reviewer = client.reviewer("market_signals")
        assert reviewer.wait_for_rate(10)
        assert (reviewer.rate, reviewer.rate_source) == (0.02, "setting")
        ids = [f"evt-{i}" for i in range(5000)]
        chosen = [
            i
            for i in ids
            if reviewer.offer(
                i,
                {"n": i, "when": time.time()},
                {"source": "pos"},
                signal="sales_activity",
            )
        ]
        # Offered again (a retry in the pipeline): the same ones, sent again, stored once.
        assert [i for i in ids[:1000] if reviewer.offer(i, {"n": i})] == [
            i for i in chosen if int(i.split("-")[1]) < 1000
        ]
        assert reviewer.flush(10)
        reviewer.close()
    assert chosen == [i for i in ids if is_sampled(i, 0.02)]
    assert 60 <= len(chosen) <= 140  # 2 % of 5000 is 100
    got = samples(base)
    assert sorted(s["event_id"] for s in got) == sorted(chosen)
    first = next(s for s in got if s["event_id"] == chosen[0])
    assert (first["signal"], first["context"], first["record"]["n"]) == (
        "sales_activity",
        {"source": "pos"},
        chosen[0],
    )


def test_a_given_rate_and_the_project(base: str, tmp_path: Path) -> None:
    with Client(base, spool_dir=tmp_path / "spool", project="retail") as client:
        reviewer = client.reviewer("orders", rate=0.005)
        assert (reviewer.rate, reviewer.rate_source) == (0.005, "given")
        sent = [i for i in range(4000) if reviewer.offer(f"o{i}", {"i": i})]
        assert reviewer.flush(10)
        reviewer.close()
    got = samples(base, project="retail", pipeline="orders")
    assert len(got) == len(sent) > 0
    assert {s["signal"] for s in got} == {"unspecified"}


def test_nonsense_is_refused_at_once(tmp_path: Path) -> None:
    client = Client("http://127.0.0.1:9", spool_dir=tmp_path / "spool")
    with pytest.raises(ValueError, match=r"rate must be a fraction between 0\.005 and 0\.02"):
        client.reviewer("p", rate=0.5)
    with pytest.raises(ValueError, match="pipeline must be text of 1 to 200 characters"):
        client.reviewer("")
    reviewer = client.reviewer("p", rate=0.01)
    with pytest.raises(ValueError, match="record must be a dict, got list"):
        reviewer.offer("e", [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="event_id must be text"):
        reviewer.offer("", {})
    reviewer.close(0)
    client.close(0)


def test_down_then_up_spools_and_resends(duck: str, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    client = Client(url, spool_dir=tmp_path / "spool", backoff_start=0.2, backoff_max=0.5)
    reviewer = client.reviewer("market_signals")  # asks for the rate: nobody answers
    started = time.perf_counter()
    sent = [f"e{i}" for i in range(3000) if reviewer.offer(f"e{i}", {"i": i})]
    assert time.perf_counter() - started < 1.0  # the pipeline did not wait for flowdeck
    assert reviewer.rate == 0.01 and reviewer.rate_source == "default"
    assert sent == [f"e{i}" for i in range(3000) if is_sampled(f"e{i}", 0.01)]
    assert reviewer.flush(5)
    assert reviewer.spooled == len(sent) > 0

    with server_on(port, duck):
        deadline = time.monotonic() + 15
        while reviewer.spooled and time.monotonic() < deadline:
            time.sleep(0.05)  # the sender retries on its own, with backoff
        assert reviewer.spooled == 0
        assert sorted(s["event_id"] for s in samples(url)) == sorted(sent)
    reviewer.close(0)
    client.close(0)
