"""The real openlineage-python client, over its HTTP transport (gzip, API key), against a
real server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import requests
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    DatasetEvent,
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
    StaticDataset,
)
from openlineage.client.facet_v2 import (
    error_message_run,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    parent_run,
)
from openlineage.client.transport.http import (
    ApiKeyTokenProvider,
    HttpCompression,
    HttpConfig,
    HttpTransport,
)

from tests.servers import threaded_server

KEY = "s3cret-key"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python"


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("FLOWDECK_LINEAGE_API_KEYS", KEY)
    with threaded_server(f"duckdb://{tmp_path / 'flowdeck.duckdb'}") as url:
        yield url


def client_for(base: str, key: str) -> OpenLineageClient:
    config = HttpConfig(
        url=base,
        auth=ApiKeyTokenProvider({"apiKey": key}),
        compression=HttpCompression.GZIP,
        retry={"total": 0},
    )
    return OpenLineageClient(transport=HttpTransport(config))


def test_the_python_client_reports_a_run(base: str) -> None:
    client = client_for(base, KEY)
    run_id, parent_id = str(uuid.uuid4()), str(uuid.uuid4())
    job = Job(namespace="etl", name="nightly.load_orders")
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_id), job=parent_run.Job(namespace="etl", name="nightly")
    )
    source = InputDataset(
        namespace="postgres://shop:5432",
        name="public.orders",
        inputFacets={
            "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=5000, size=1_000_000
            )
        },
    )
    target = OutputDataset(
        namespace="s3://lake",
        name="orders",
        outputFacets={
            "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=4990
            )
        },
    )
    client.emit(
        RunEvent(
            eventType=RunState.START,
            eventTime="2026-11-23T01:00:00+00:00",
            run=Run(runId=run_id, facets={"parent": parent}),
            job=job,
            producer=PRODUCER,
        )
    )
    client.emit(
        RunEvent(
            eventType=RunState.FAIL,
            eventTime="2026-11-23T01:02:30+00:00",
            run=Run(
                runId=run_id,
                facets={
                    "parent": parent,
                    "errorMessage": error_message_run.ErrorMessageRunFacet(
                        message="disk full", programmingLanguage="python"
                    ),
                },
            ),
            job=job,
            inputs=[source],
            outputs=[target],
            producer=PRODUCER,
        )
    )
    # A DatasetEvent is accepted (the client would raise otherwise) and ignored.
    client.emit(
        DatasetEvent(
            eventTime="2026-11-23T01:03:00+00:00",
            dataset=StaticDataset(namespace="s3://lake", name="orders"),
            producer=PRODUCER,
        )
    )
    got = httpx2.get(f"{base}/api/v1/runs/{run_id}").json()
    assert got["pipeline"] == "nightly.load_orders"
    assert got["batch_id"] == parent_id
    assert got["status"] == "FAILED"
    assert got["error_message"] == "disk full"
    assert got["duration_s"] == 150
    assert (got["rows_read"], got["rows_written"]) == (5000, 4990)
    assert got["custom_stats"]["bytes_read"] == 1_000_000
    assert got["labels"]["namespace"] == "etl"


def test_a_wrong_api_key_is_refused(base: str) -> None:
    client = client_for(base, "not-the-key")
    event = RunEvent(
        eventType=RunState.START,
        eventTime="2026-11-23T01:00:00+00:00",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="etl", name="x"),
        producer=PRODUCER,
    )
    with pytest.raises(requests.HTTPError, match="401"):
        client.emit(event)
    assert httpx2.get(f"{base}/api/v1/batches").json() == {"items": []}


def test_env_from_the_endpoint_query(base: str) -> None:
    config = HttpConfig(
        url=base,
        endpoint="api/v1/lineage?env=prod&project=retail",
        auth=ApiKeyTokenProvider({"apiKey": KEY}),
        retry={"total": 0},
    )
    client = OpenLineageClient(transport=HttpTransport(config))
    run_id = str(uuid.uuid4())
    client.emit(
        RunEvent(
            eventType=RunState.START,
            eventTime="2026-11-23T01:00:00+00:00",
            run=Run(runId=run_id),
            job=Job(namespace="etl", name="x"),
            producer=PRODUCER,
        )
    )
    got = httpx2.get(f"{base}/api/v1/runs/{run_id}").json()
    assert (got["env"], got["project"]) == ("prod", "retail")
