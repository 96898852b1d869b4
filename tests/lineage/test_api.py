"""POST /api/v1/lineage against both stores: event files shaped like the Airflow and Spark
integrations' output, in any order and twice, and every way of getting a request wrong."""

from __future__ import annotations

import gzip
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from tests.api.conftest import MakeClient, services_of

URL = "/api/v1/lineage"
EVENTS = Path(__file__).parent / "events"
AIRFLOW_DAG_RUN = "01935a1e-7b2c-7d4e-9a10-3f2b8c6d5e41"
SPARK_APP = "0193610b-1a2b-7c3d-8e4f-5a6b7c8d9e01"
SPARK_ACTION = "0193610b-2b3c-7d4e-9f50-6b7c8d9e0f12"


def load(name: str) -> list[dict[str, Any]]:
    lines = (EVENTS / name).read_text().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def relabel(events: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """The same events about other runs: every run id gets a suffix."""
    ids = {e["run"]["runId"] for e in events}
    text = orjson.dumps(events).decode()
    for run_id in ids:
        text = text.replace(run_id, f"{run_id}-{tag}")
    out: list[dict[str, Any]] = orjson.loads(text)
    return out


def stored(client: TestClient, run_id: str, tag: str = "") -> dict[str, Any]:
    res = client.get(f"/api/v1/runs/{run_id}{tag}?history=0")
    assert res.status_code == 200, res.text
    got: dict[str, Any] = res.json()
    for key in ("created_at", "updated_at", "history"):
        got.pop(key)
    if tag:
        text = orjson.dumps(got).decode().replace(tag, "")
        got = orjson.loads(text)
    return got


def post(client: TestClient, data: Any, **kwargs: Any) -> dict[str, Any]:
    res = client.post(URL, json=data, **kwargs)
    assert res.status_code == 200, res.text
    out: dict[str, Any] = res.json()
    return out


def test_airflow_dag_run_in_any_order_and_twice(client: TestClient) -> None:
    events = load("airflow_retail_daily.jsonl")
    run_ids = list(dict.fromkeys(e["run"]["runId"] for e in events))
    rng = random.Random(5)
    orders = {
        "sent": list(events),
        "reversed": list(reversed(events)),
        "shuffled": rng.sample(events, len(events)),
        "twice": [*events, *rng.sample(events, len(events))],
    }
    results = {}
    for tag, ordered in orders.items():
        for e in relabel(ordered, tag):
            post(client, e)  # one event per request, as the Airflow provider sends them
        results[tag] = [stored(client, run_id, f"-{tag}") for run_id in run_ids]
    assert results["reversed"] == results["sent"]
    assert results["shuffled"] == results["sent"]
    assert results["twice"] == results["sent"]

    dag, load_sales, check, publish = results["sent"]
    assert {r["batch_id"] for r in results["sent"]} == {AIRFLOW_DAG_RUN}
    assert dag["pipeline"] == "retail_daily"
    assert dag["status"] == "FAILED"
    assert dag["labels"] == {
        "namespace": "airflow-prod",
        "integration": "airflow",
        "job_type": "dag",
    }
    assert load_sales["pipeline"] == "retail_daily.load_sales"
    assert load_sales["status"] == "SUCCESS"
    assert load_sales["started_at"] == "2026-11-23T01:00:05.020000Z"
    assert load_sales["ended_at"] == "2026-11-23T01:12:30.500000Z"
    assert load_sales["duration_s"] == pytest.approx(745.48)
    assert (load_sales["rows_read"], load_sales["rows_written"]) == (120000, 48211)
    assert load_sales["labels"]["parent_job"] == "retail_daily"
    assert load_sales["custom_stats"]["nominal_start_time"] == "2026-11-22T01:00:00Z"
    assert load_sales["custom_stats"]["bytes_written"] == 7340032
    assert check["dq_errors"] == 1
    assert check["custom_stats"]["dq_failed_assertions"] == [
        "postgres://warehouse:5432/shop.public.orders.customer_id: null_check"
    ]
    assert publish["status"] == "FAILED"
    assert publish["error_message"].startswith(
        'psycopg2.errors.UndefinedTable: relation "marts.report" does not exist\nTraceback'
    )

    batch = client.get(f"/api/v1/batches/{AIRFLOW_DAG_RUN}-sent").json()
    assert (batch["total"], batch["succeeded"], batch["failed"]) == (4, 2, 2)
    assert batch["health"] == "red"


def test_spark_application_and_its_job_share_a_batch(client: TestClient) -> None:
    events = load("spark_customer_scd2.jsonl")
    # Sent as one list: out of order, and the RUNNING event after COMPLETE.
    shuffled = [events[3], events[0], events[2], events[4], events[1]]
    assert post(client, shuffled) == {
        "accepted": 5,
        "run_ids": [SPARK_ACTION, SPARK_APP],
        "ignored": 0,
    }
    app, action = stored(client, SPARK_APP), stored(client, SPARK_ACTION)
    assert app["batch_id"] == action["batch_id"] == SPARK_APP
    assert app["status"] == action["status"] == "SUCCESS"
    assert action["env"] == "prod"  # from the run tag "environment"
    assert action["labels"] == {
        "namespace": "spark-prod",
        "team": "crm",
        "integration": "spark",
        "job_type": "sql_job",
        "parent_job": "customer_scd2_merge",
    }
    assert action["started_at"] == "2026-11-23T02:00:12.400000Z"
    assert (action["rows_read"], action["rows_written"]) == (2_500_000, 2_498_800)
    assert action["read_throughput"] == pytest.approx(2_500_000 / 453.5)
    assert action["custom_stats"]["files_written"] == 8


def test_env_and_project_from_the_query(client: TestClient) -> None:
    event = load("airflow_retail_daily.jsonl")[0]
    post(client, event, params={"env": "prod", "project": "retail"})
    got = stored(client, event["run"]["runId"])
    assert (got["env"], got["project"]) == ("prod", "retail")


def test_gzip_body_as_the_client_sends_it(client: TestClient) -> None:
    data = gzip.compress(orjson.dumps(load("spark_customer_scd2.jsonl")[0]))
    res = client.post(
        URL, content=data, headers={"content-type": "application/json", "content-encoding": "gzip"}
    )
    assert res.status_code == 200, res.text
    assert stored(client, SPARK_APP)["status"] == "RUNNING"


def test_an_invalid_event_writes_nothing_of_the_request(client: TestClient) -> None:
    good = load("spark_customer_scd2.jsonl")
    bad = {**good[1], "eventTime": "2026-11-23T02:00:00"}
    res = client.post(URL, json=[*good, bad])
    assert res.status_code == 422
    assert res.json()["message"] == (
        "events[5].eventTime: must include a time zone offset (e.g. 2026-01-31T02:00:00Z)"
    )
    assert res.json()["detail"][0]["loc"] == "events[5].eventTime"
    assert services_of(client).store.count_runs() == 0


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "body is not valid JSON",
        ),
        (
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            415,
            "Content-Type must be application/json, got 'text/plain'",
        ),
        ({"json": {"eventType": "START"}}, 422, "event.eventTime: Field required"),
        ({"json": [], "params": {}}, 422, "events: must contain at least one event"),
        ({"json": {}, "params": {"env": ""}}, 422, "env: String should have at least 1 character"),
    ],
)
def test_bad_requests_are_named(
    client: TestClient, kwargs: dict[str, Any], status: int, message: str
) -> None:
    res = client.post(URL, **kwargs)
    assert res.status_code == status
    assert res.json()["message"].startswith(message)


def test_over_the_event_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_runs_per_request=2)
    res = client.post(URL, json=load("spark_customer_scd2.jsonl"))
    assert res.status_code == 413
    assert res.json()["message"] == "events: at most 2 events per request, got 5"


def test_api_keys_when_configured(make_client: MakeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_LINEAGE_API_KEYS", "old-key, new-key")
    client = make_client()
    event = load("spark_customer_scd2.jsonl")[0]
    missing = client.post(URL, json=event)
    assert missing.status_code == 401
    assert missing.json() == {"message": "Authorization: Bearer <API key> is required"}
    assert missing.headers["www-authenticate"] == 'Bearer realm="flowdeck"'
    wrong = client.post(URL, json=event, headers={"authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["message"]) == (401, "the API key is not valid")
    assert services_of(client).store.count_runs() == 0
    for key in ("old-key", "new-key"):
        ok = client.post(URL, json=event, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    # Other endpoints are not behind the lineage key.
    assert client.get("/api/v1/batches").status_code == 200
