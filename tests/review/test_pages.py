"""The review pages without a browser, on both backends: the queue with each record and its
context, the filters, the decision forms (approve, a rejection without a note, a second
decision), one sample's page and the sampling-rate form."""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.testclient import TestClient

from tests.review.conftest import sample

API = "/api/v1/review"


def seed(client: TestClient) -> list[str]:
    answer = client.post(
        f"{API}/samples",
        json=[
            sample(
                "evt-1",
                record={"store": "S-12", "units": 3, "tags": ["promo", "weekend"], "ok": True},
                context={"source": "pos", "model": {"name": "enrich", "version": 3}},
            ),
            sample("evt-2", signal="field_reports", sampled_at="2026-11-21T00:40:00Z"),
            sample("evt-3", pipeline="orders", sampled_at="2026-11-21T00:50:00Z"),
        ],
    )
    assert answer.status_code == 200, answer.text
    ids: list[str] = answer.json()["ids"]
    return ids


def test_the_queue_shows_each_record_with_its_context(client: TestClient) -> None:
    ids = seed(client)
    page = client.get("/review")
    assert page.status_code == 200
    html = page.text
    assert 'aria-current="page">Review</a>' in html
    # Oldest first, each one with its record and context laid out.
    assert html.index("evt-1") < html.index("evt-2") < html.index("evt-3")
    assert "<dt>store</dt>" in html and "S-12" in html
    assert "promo, weekend" in html
    assert "<dt>model</dt>" in html and "enrich" in html
    assert f'action="/review/{ids[0]}/decision"' in html
    assert 'data-count="pending">3<' in html
    assert 'href="/api/v1/review/samples.csv?status=pending"' in html

    only = client.get("/review", params={"pipeline": "orders"}).text
    assert "evt-3" in only and "evt-1" not in only
    assert "Sampling rate of orders" in only and "now 1 % (default)" in only
    signal = client.get("/review", params={"signal": "field_reports"}).text
    assert "evt-2" in signal and "evt-1" not in signal
    assert "Nothing to review" in client.get("/review", params={"pipeline": "none"}).text
    past = client.get("/review", params={"page": "9"}).text  # past the end: the last page
    assert "evt-1" in past and "Nothing to review" not in past


def test_approve_and_reject_through_the_forms(client: TestClient) -> None:
    ids = seed(client)
    back = "/review?pipeline=market_signals"
    done = client.post(
        f"/review/{ids[0]}/decision",
        data={"outcome": "approved", "note": "", "reviewer": "ana", "back": back},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == back + "&done=" + quote("Approved evt-1 (market_signals)")
    assert client.get(f"{API}/samples/{ids[0]}").json()["reviewer"] == "ana"

    refused = client.post(
        f"/review/{ids[1]}/decision",
        data={"outcome": "rejected", "note": "  ", "back": back},
        follow_redirects=False,
    )
    assert refused.status_code == 422
    assert "is required when the outcome is rejected: say what is wrong" in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert client.get(f"{API}/samples/{ids[1]}").json()["status"] == "pending"

    rejected = client.post(
        f"/review/{ids[1]}/decision",
        data={"outcome": "rejected", "note": "wrong region", "back": back},
        follow_redirects=False,
    )
    assert rejected.status_code == 303
    twice = client.post(
        f"/review/{ids[1]}/decision",
        data={"outcome": "approved", "back": back},
        follow_redirects=False,
    )
    assert twice.status_code == 409
    assert re.search(r"was already rejected at [^;]+; a decision is final", twice.text)

    queue = client.get(back).text
    assert "Nothing to review" in queue
    assert 'data-count="approved">1<' in queue and 'data-count="rejected">1<' in queue
    assert 'data-count="approval_rate">50.0 %<' in queue
    decided = client.get("/review", params={"status": "rejected"}).text
    assert "wrong region" in decided and "evt-2" in decided


def test_one_sample_page_and_its_form(client: TestClient) -> None:
    ids = seed(client)
    page = client.get(f"/review/{ids[2]}", params={"back": "/review?status=all"})
    assert page.status_code == 200
    assert "Sample of orders" in page.text
    assert 'href="/review?status=all">Review</a>' in page.text
    form_back = re.search(r'name="back" value="([^"]+)"', page.text)
    assert form_back is not None
    back = form_back.group(1).replace("&amp;", "&")
    assert back.startswith(f"/review/{ids[2]}?back=")
    done = client.post(
        f"/review/{ids[2]}/decision",
        data={"outcome": "approved", "back": back},
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert "Approved evt-3 (orders)." in done.text
    assert "<strong>Approved</strong>" in done.text
    assert client.get("/review/nope").status_code == 404
    # A back link elsewhere is not followed.
    away = client.post(
        f"/review/{ids[0]}/decision",
        data={"outcome": "approved", "back": "https://elsewhere.example/"},
        follow_redirects=False,
    )
    assert away.headers["location"].startswith("/review?done=")


def test_sampling_rate_form(client: TestClient) -> None:
    seed(client)
    done = client.post(
        "/review/settings/orders",
        data={"rate": "0.02", "project": "default", "back": "/review?pipeline=orders"},
        follow_redirects=True,
    )
    assert done.status_code == 200
    assert "Sampling rate of orders set to 2 %." in done.text
    assert "now 2 % (review setting)" in done.text
    bad = client.post("/review/settings/orders", data={"rate": "0.5"})
    assert bad.status_code == 422
    assert "rate: must be a fraction between 0.005 and 0.02" in bad.text
    assert client.get(f"{API}/settings/orders").json()["rate"] == 0.02
