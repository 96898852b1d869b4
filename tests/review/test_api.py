"""/api/v1/review on both backends: ingest (idempotent), the list with its filters and
paging, one sample, decisions (409 on a second one, 422 for a rejection without a note), the
CSV export, the summary, the sampling settings, the outcome metric, and every 4xx with the
field and the rule it names; nothing of a refused request is written."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import MakeClient
from tests.review.conftest import sample

API = "/api/v1/review"


def post(client: TestClient, body: Any) -> dict[str, Any]:
    answer = client.post(f"{API}/samples", json=body)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def listing(client: TestClient, **params: Any) -> dict[str, Any]:
    answer = client.get(f"{API}/samples", params=params)
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()
    return out


def decide(client: TestClient, sample_id: str, **body: Any) -> Any:
    return client.post(f"{API}/samples/{sample_id}/decision", json=body)


def test_ingest_is_idempotent_and_one_sample_reads_back(client: TestClient) -> None:
    first = post(client, sample())
    assert (first["accepted"], first["created"]) == (1, 1)
    (sample_id,) = first["ids"]
    got = client.get(f"{API}/samples/{sample_id}").json()
    assert got["status"] == "pending"
    assert got["record"] == {"store": "S-12", "sku": "A-1", "units": 3, "price": 9.5}
    assert got["context"] == {"source": "pos", "enriched_by": "model-v3"}
    assert (got["pipeline"], got["project"], got["signal"]) == (
        "market_signals",
        "default",
        "sales_activity",
    )
    assert got["sampled_at"] == "2026-11-21T00:30:00Z"
    assert got["received_at"] == "2026-11-21T01:00:00Z"
    assert got["decided_at"] is None and got["url"] == f"/review/{sample_id}"

    # The same event again (even with another record): a no-op, the first one stays.
    again = post(client, [sample(record={"changed": True}), sample("e2"), sample("e2")])
    assert (again["accepted"], again["created"]) == (3, 1)
    assert again["ids"][0] == sample_id and again["ids"][1] == again["ids"][2]
    assert client.get(f"{API}/samples/{sample_id}").json()["record"]["store"] == "S-12"
    assert listing(client)["total"] == 2
    # Another project's event with the same id is another sample.
    other = post(client, sample(project="other"))
    assert other["created"] == 1 and other["ids"][0] != sample_id


def test_list_filters_paging_and_order(client: TestClient) -> None:
    post(
        client,
        [
            sample(f"e{i}", sampled_at=f"2026-11-21T00:0{i}:00Z", signal=signal, pipeline=pipe)
            for i, (signal, pipe) in enumerate(
                [
                    ("sales_activity", "market_signals"),
                    ("field_reports", "market_signals"),
                    ("sales_activity", "market_signals"),
                    ("market_signals", "market_signals"),
                    ("sales_activity", "orders"),
                ]
            )
        ],
    )
    everything = listing(client)
    assert everything["total"] == 5
    assert [s["event_id"] for s in everything["items"]] == ["e4", "e3", "e2", "e1", "e0"]
    assert everything["counts"] == {"pending": 5, "approved": 0, "rejected": 0}

    oldest = listing(client, order="oldest", page_size=2, page=2)
    assert [s["event_id"] for s in oldest["items"]] == ["e2", "e3"]
    assert (oldest["pages"], oldest["page"], oldest["page_size"]) == (3, 2, 2)

    assert [s["event_id"] for s in listing(client, pipeline="orders")["items"]] == ["e4"]
    sales = listing(client, signal="sales_activity", pipeline="market_signals")
    assert [s["event_id"] for s in sales["items"]] == ["e2", "e0"]

    e1 = everything["items"][3]["id"]
    assert decide(client, e1, outcome="approved").status_code == 200
    assert [s["event_id"] for s in listing(client, status="approved")["items"]] == ["e1"]
    pending = listing(client, status="pending")
    assert pending["total"] == 4
    # The counts are within the other filters, whatever the status asked for.
    assert pending["counts"] == {"pending": 4, "approved": 1, "rejected": 0}
    assert listing(client, status="all")["total"] == 5


def test_decisions_are_final_and_a_rejection_needs_a_note(client: TestClient) -> None:
    a, b = post(client, [sample("a"), sample("b")])["ids"]

    approved = decide(client, a, outcome="approved", reviewer="  ana ")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["reviewer"], body["note"]) == ("approved", "ana", None)
    assert body["decided_at"] == "2026-11-21T01:00:00Z"

    again = decide(client, a, outcome="rejected", note="second thoughts")
    assert again.status_code == 409
    assert again.json()["message"] == (
        f"review sample {a!r} was already approved by ana at 2026-11-21T01:00:00+00:00; "
        "a decision is final"
    )

    for note in (None, "", "   "):
        extra = {} if note is None else {"note": note}
        refused = decide(client, b, outcome="rejected", **extra)
        assert refused.status_code == 422
        assert refused.json()["message"] == (
            "note: is required when the outcome is rejected: say what is wrong"
        )
    assert client.get(f"{API}/samples/{b}").json()["status"] == "pending"

    rejected = decide(client, b, outcome="rejected", note="price is per pack, not per unit")
    assert rejected.status_code == 200
    assert rejected.json()["note"] == "price is per pack, not per unit"
    assert rejected.json()["reviewer"] is None


def test_outcomes_are_the_review_outcomes_metric(client: TestClient) -> None:
    ids = post(client, [sample(f"e{i}", signal="sales_activity") for i in range(3)])["ids"]
    decide(client, ids[0], outcome="approved")
    decide(client, ids[1], outcome="approved")
    decide(client, ids[2], outcome="rejected", note="wrong store")
    got = client.post(
        "/api/v1/metrics/query",
        json={
            "metric": "review.outcomes",
            "aggregation": "sum",
            "group_by": ["outcome"],
            "start": "2026-11-21T00:00:00Z",
            "end": "2026-11-21T02:00:00Z",
            "step": "1h",
            "filters": [{"tag": "pipeline", "op": "equals", "value": "market_signals"}],
        },
    )
    assert got.status_code == 200, got.text
    totals = {s["tags"]["outcome"]: sum(v for _, v in s["points"]) for s in got.json()["series"]}
    assert totals == {"approved": 2.0, "rejected": 1.0}
    names = {m["name"]: m["series"] for m in client.get("/api/v1/metrics/names").json()["metrics"]}
    assert names["review.outcomes"] == 2  # (approved, rejected) × one pipeline and signal
    assert names["review.samples"] == 1


def test_summary_counts_and_approval_rate_over_time(client: TestClient) -> None:
    ids = post(client, [sample(f"e{i}") for i in range(4)])["ids"]
    decide(client, ids[0], outcome="approved")
    decide(client, ids[1], outcome="approved")
    decide(client, ids[2], outcome="rejected", note="duplicate")
    got = client.get(f"{API}/summary", params={"range": "24h"}).json()
    assert got["counts"] == {"pending": 1, "approved": 2, "rejected": 1}
    assert got["approval_rate"] == pytest.approx(2 / 3)
    assert got["step_s"] == 3600
    assert len(got["series"]) == 25
    last = got["series"][-1]
    assert last["t"] == "2026-11-21T01:00:00Z"
    assert (last["approved"], last["rejected"]) == (2, 1)
    assert last["approval_rate"] == pytest.approx(2 / 3)
    assert got["series"][0]["approval_rate"] is None
    assert got["by_signal"] == [
        {
            "signal": "sales_activity",
            "pending": 1,
            "approved": 2,
            "rejected": 1,
            "approval_rate": pytest.approx(2 / 3),
        }
    ]
    other = client.get(f"{API}/summary", params={"pipeline": "nothing"}).json()
    assert other["counts"] == {"pending": 0, "approved": 0, "rejected": 0}
    assert other["approval_rate"] is None


def test_csv_export(client: TestClient) -> None:
    text = {"text": 'a "quoted", line\nnext'}
    later = "2026-11-21T00:40:00Z"
    ids = post(client, [sample("e1"), sample("e2", record=text, sampled_at=later)])["ids"]
    decide(client, ids[1], outcome="rejected", note="text, with a comma", reviewer="bo")
    answer = client.get(f"{API}/samples.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="review-samples.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["event_id"] for r in rows] == ["e1", "e2"]
    assert rows[1]["status"] == "rejected"
    assert rows[1]["note"] == "text, with a comma"
    assert rows[1]["reviewer"] == "bo"
    assert rows[1]["record"] == '{"text":"a \\"quoted\\", line\\nnext"}'
    assert rows[0]["decided_at"] == ""
    only = client.get(f"{API}/samples.csv", params={"status": "rejected"})
    assert only.headers["content-disposition"].endswith('review-samples-rejected.csv"')
    assert [r["event_id"] for r in csv.DictReader(io.StringIO(only.text))] == ["e2"]


def test_settings_default_own_setting_and_list(client: TestClient) -> None:
    got = client.get(f"{API}/settings/orders").json()
    assert got == {
        "project": "default",
        "pipeline": "orders",
        "rate": 0.01,
        "source": "default",
        "setting": None,
        "updated_at": None,
    }
    put = client.put(f"{API}/settings/orders", json={"rate": 0.02})
    assert put.status_code == 200, put.text
    assert (put.json()["rate"], put.json()["source"]) == (0.02, "setting")
    assert client.get(f"{API}/settings/orders").json()["rate"] == 0.02
    assert client.get(f"{API}/settings/orders", params={"project": "p2"}).json()["rate"] == 0.01
    client.put(f"{API}/settings/orders", json={"rate": 0.005})
    assert client.get(f"{API}/settings/orders").json()["rate"] == 0.005
    post(client, sample(pipeline="billing"))
    items = client.get(f"{API}/settings").json()["items"]
    assert [(i["pipeline"], i["rate"], i["source"]) for i in items] == [
        ("billing", 0.01, "default"),
        ("orders", 0.005, "setting"),
    ]


BIG = "x" * (64 * 1024)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({k: v for k, v in sample().items() if k != "pipeline"}, "sample.pipeline: is required"),
        (sample(record=[1, 2]), "sample.record: Input should be a valid dictionary"),
        (
            sample(record={"t": BIG}),
            "sample.record: must be at most 65536 bytes as JSON; got 65544",
        ),
        (sample(context="pos"), "sample.context: Input should be a valid dictionary"),
        (sample(""), "sample.event_id: must be 1 to 200 characters without control characters"),
        (
            sample(pipeline="a\nb"),
            "sample.pipeline: must be 1 to 200 characters without control characters",
        ),
        (
            sample(signal="s" * 101),
            "sample.signal: must be 1 to 100 characters without control characters",
        ),
        (
            sample(sampled_at="2026-11-21T00:30:00"),
            "sample.sampled_at: Input should have timezone info",
        ),
        (
            sample(sampled_at="1969-12-31T23:00:00Z"),
            "sample.sampled_at: must be on or after 1970-01-01",
        ),
        (sample(colour="red"), "sample.colour: is not a known field"),
        (
            [sample("ok"), sample("bad", record=None)],
            "samples[1].record: Input should be a valid dictionary",
        ),
        ([sample("ok"), 7], "samples[1]: must be a JSON object"),
        ([], "samples: must contain at least one sample"),
        ([sample(f"e{i}") for i in range(1001)], "samples: at most 1000 per request; got 1001"),
        ("text", "body: must be a sample object or a list of them"),
    ],
)
def test_invalid_samples_are_422_and_nothing_is_written(
    client: TestClient, body: Any, message: str
) -> None:
    answer = client.post(f"{API}/samples", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["message"] == message
    assert listing(client)["total"] == 0
    assert "review.samples" not in client.get("/api/v1/metrics/names").text


def test_other_4xx(client: TestClient) -> None:
    (sample_id,) = post(client, sample())["ids"]
    not_json = client.post(
        f"{API}/samples", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("body is not valid JSON")
    assert client.post(f"{API}/samples", content=b"x").status_code == 415
    huge = client.post(
        f"{API}/samples",
        content=b"[" + b" " * (8 * 1024 * 1024) + b"]",
        headers={"content-type": "application/json"},
    )
    assert (huge.status_code, huge.json()["message"]) == (
        413,
        "request body is larger than the limit of 8388608 bytes",
    )
    missing = client.get(f"{API}/samples/nope")
    assert (missing.status_code, missing.json()["message"]) == (
        404,
        "review sample 'nope' not found",
    )
    assert decide(client, "nope", outcome="approved").status_code == 404
    bad_outcome = decide(client, sample_id, outcome="maybe")
    assert bad_outcome.status_code == 422
    assert bad_outcome.json()["message"] == "outcome: Input should be 'approved' or 'rejected'"
    long_note = decide(client, sample_id, outcome="approved", note="n" * 2001)
    assert long_note.json()["message"] == "note: String should have at most 2000 characters"
    extra = decide(client, sample_id, outcome="approved", score=3)
    assert extra.json()["message"] == "score: is not a known field"
    assert decide(client, sample_id).json()["message"] == "outcome: is required"
    status = client.get(f"{API}/samples", params={"status": "done"})
    assert (status.status_code, status.json()["message"]) == (
        422,
        "status: must be one of pending, approved, rejected or all; got 'done'",
    )
    page = client.get(f"{API}/samples", params={"page": 0})
    assert (page.status_code, page.json()["message"]) == (
        422,
        "page: Input should be greater than or equal to 1",
    )
    rng = client.get(f"{API}/summary", params={"range": "1y"})
    assert (rng.status_code, rng.json()["message"]) == (
        422,
        "range: must be one of 24h, 7d, 30d, 90d; got '1y'",
    )
    for rate, message in [
        (0.5, "rate: must be a fraction between 0.005 and 0.02 (0.5 % to 2 %); got 0.5"),
        (0.001, "rate: must be a fraction between 0.005 and 0.02 (0.5 % to 2 %); got 0.001"),
        ("high", "rate: Input should be a valid number, unable to parse string as a number"),
        (None, "rate: Input should be a valid number"),
    ]:
        put = client.put(f"{API}/settings/orders", json={"rate": rate})
        assert (put.status_code, put.json()["message"]) == (422, message)
    assert client.put(f"{API}/settings/orders", json={}).json()["message"] == "rate: is required"
    assert client.get(f"{API}/settings/orders").json()["source"] == "default"
    # Nothing of it changed the sample.
    assert client.get(f"{API}/samples/{sample_id}").json()["status"] == "pending"


def test_a_metric_that_cannot_be_written_leaves_nothing_behind(make_client: MakeClient) -> None:
    # One tag combination per metric: the second pipeline's samples, and the second kind
    # of outcome, would need another series.
    client = make_client(metric_max_series=1)
    (first,) = post(client, sample("a"))["ids"]
    refused = client.post(f"{API}/samples", json=[sample("b", pipeline="orders")])
    assert refused.status_code == 422
    assert "review.samples" in refused.json()["message"]
    assert "over the limit of 1 per metric" in refused.json()["message"]
    assert listing(client)["total"] == 1

    (second,) = post(client, sample("c"))["ids"]
    assert decide(client, first, outcome="approved").status_code == 200
    refused = decide(client, second, outcome="rejected", note="bad")
    assert refused.status_code == 422
    assert "review.outcomes" in refused.json()["message"]
    assert client.get(f"{API}/samples/{second}").json()["status"] == "pending"
    assert listing(client)["counts"] == {"pending": 1, "approved": 1, "rejected": 0}
    # And it can still be decided in a way the metric takes.
    assert decide(client, second, outcome="approved").status_code == 200


def test_a_declared_flows_review_rate_wins(client: TestClient) -> None:
    client.put(f"{API}/settings/market_signals", json={"rate": 0.005})
    declared = client.put(
        "/api/v1/flows/market_signals",
        json={"stages": [{"name": "ingest"}, {"name": "enrich"}], "review_rate": 0.015},
    )
    assert declared.status_code in (200, 201), declared.text
    got = client.get(f"{API}/settings/market_signals").json()
    assert (got["rate"], got["source"], got["setting"]) == (0.015, "flow", 0.005)
    # Setting the review's own rate is kept, but the flow's still applies.
    put = client.put(f"{API}/settings/market_signals", json={"rate": 0.02}).json()
    assert (put["rate"], put["source"], put["setting"]) == (0.015, "flow", 0.02)
    assert client.get(f"{API}/settings/orders").json()["source"] == "default"
