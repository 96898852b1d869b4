"""The OpenLineage mapping as a pure function: events in, run reports out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from flowdeck.errors import InvalidInput
from flowdeck.ingest.openlineage import (
    BadJson,
    Defaults,
    RunEvent,
    TooManyEvents,
    event_report,
    parse_events,
)

RUN = "0193610b-2b3c-7d4e-9f50-6b7c8d9e0f12"
PARENT = "0193610b-1a2b-7c3d-8e4f-5a6b7c8d9e01"
ROOT = "01935a1e-7b2c-7d4e-9a10-3f2b8c6d5e41"


def event(event_type: str | None = "START", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "eventTime": "2026-11-23T03:00:00+01:00",
        "producer": "https://example.com/producer",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": RUN},
        "job": {"namespace": "etl", "name": "load_sales"},
    }
    if event_type is not None:
        body["eventType"] = event_type
    body.update(extra)
    return body


NONE = Defaults()


def report(body: dict[str, Any], defaults: Defaults = NONE) -> dict[str, Any]:
    return event_report(RunEvent.model_validate(body), defaults)


def test_start_is_running_from_the_event_time() -> None:
    assert report(event("START")) == {
        "run_id": RUN,
        "pipeline": "load_sales",
        "status": "RUNNING",
        "started_at": datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        "labels": {"namespace": "etl"},
    }


def test_running_carries_no_time_so_its_order_does_not_matter() -> None:
    got = report(event("RUNNING"))
    assert got["status"] == "RUNNING"
    assert "started_at" not in got and "ended_at" not in got


@pytest.mark.parametrize(
    ("event_type", "status"), [("COMPLETE", "SUCCESS"), ("FAIL", "FAILED"), ("ABORT", "FAILED")]
)
def test_terminal_events_end_the_run(event_type: str, status: str) -> None:
    got = report(event(event_type))
    assert got["status"] == status
    assert got["ended_at"] == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert "started_at" not in got


def test_abort_without_an_error_facet_says_so() -> None:
    assert report(event("ABORT"))["error_message"] == "run aborted"
    assert "error_message" not in report(event("FAIL"))


@pytest.mark.parametrize("event_type", ["OTHER", None])
def test_other_events_leave_the_status_alone(event_type: str | None) -> None:
    got = report(event(event_type))
    assert "status" not in got and "started_at" not in got and "ended_at" not in got


def test_error_message_facet_keeps_the_stack_trace() -> None:
    facets = {
        "errorMessage": {
            "message": "division by zero",
            "programmingLanguage": "python",
            "stackTrace": "Traceback …\nZeroDivisionError",
        }
    }
    got = report(event("FAIL", run={"runId": RUN, "facets": facets}))
    assert got["error_message"] == "division by zero\nTraceback …\nZeroDivisionError"


def test_parent_names_the_batch_and_its_root_wins() -> None:
    parent = {
        "run": {"runId": PARENT},
        "job": {"namespace": "spark", "name": "customer_merge"},
    }
    got = report(event(run={"runId": RUN, "facets": {"parent": parent}}))
    assert got["batch_id"] == PARENT
    assert got["labels"]["parent_job"] == "customer_merge"
    assert "custom_stats" not in got

    rooted = {**parent, "root": {"run": {"runId": ROOT}, "job": {"namespace": "a", "name": "dag"}}}
    got = report(event(run={"runId": RUN, "facets": {"parent": rooted}}))
    assert got["batch_id"] == ROOT
    assert got["custom_stats"] == {"parent_run_id": PARENT}


def test_without_a_parent_the_run_is_a_batch_of_its_own() -> None:
    assert "batch_id" not in report(event())


def test_a_deleted_facet_counts_as_absent() -> None:
    facets = {"parent": {"_deleted": True}, "errorMessage": {"_deleted": True}}
    got = report(event("FAIL", run={"runId": RUN, "facets": facets}))
    assert "batch_id" not in got and "error_message" not in got


def test_statistics_sum_over_datasets() -> None:
    inputs = [
        {
            "namespace": "s3://raw",
            "name": "a",
            "inputFacets": {"inputStatistics": {"rowCount": 10, "size": 100}},
        },
        {"namespace": "s3://raw", "name": "b", "inputFacets": {"inputStatistics": {"rowCount": 5}}},
        {"namespace": "s3://raw", "name": "c"},
    ]
    outputs = [
        {
            "namespace": "pg://wh",
            "name": "marts.sales",
            "outputFacets": {"outputStatistics": {"rowCount": 14, "size": 700, "fileCount": 2}},
        }
    ]
    got = report(event("COMPLETE", inputs=inputs, outputs=outputs))
    assert got["rows_read"] == 15
    assert got["rows_written"] == 14
    assert got["custom_stats"] == {
        "bytes_read": 100,
        "bytes_written": 700,
        "files_written": 2,
        "inputs": ["s3://raw/a", "s3://raw/b", "s3://raw/c"],
        "outputs": ["pg://wh/marts.sales"],
    }


def test_datasets_without_statistics_give_no_row_counts() -> None:
    got = report(event("START", inputs=[{"namespace": "n", "name": "t"}]))
    assert "rows_read" not in got and "rows_written" not in got


def test_data_quality_assertions_and_metrics() -> None:
    checked = {
        "namespace": "pg://wh",
        "name": "orders",
        "inputFacets": {
            "dataQualityAssertions": {
                "assertions": [
                    {"assertion": "not_null", "success": True, "column": "id"},
                    {"assertion": "not_null", "success": False, "column": "customer_id"},
                ]
            },
            "dataQualityMetrics": {
                "rowCount": 1000,
                "columnMetrics": {"customer_id": {"nullCount": 7}, "id": {"distinctCount": 1000}},
            },
        },
        "facets": {
            "dataQualityAssertions": {
                "assertions": [{"assertion": "row_count", "success": False, "name": "min_rows"}]
            }
        },
    }
    got = report(event("COMPLETE", inputs=[checked]))
    assert got["dq_errors"] == 2
    stats = got["custom_stats"]
    assert stats["dq_assertions"] == 3
    assert stats["dq_assertions_failed"] == 2
    assert stats["dq_failed_assertions"] == [
        "pg://wh/orders: min_rows",
        "pg://wh/orders.customer_id: not_null",
    ]
    assert stats["dq_metrics"] == {
        "pg://wh/orders": {"row_count": 1000, "null_counts": {"customer_id": 7}}
    }
    assert stats["dq_null_values"] == 7


def test_passing_assertions_give_zero_dq_errors() -> None:
    ok = {
        "namespace": "n",
        "name": "t",
        "facets": {"dataQualityAssertions": {"assertions": [{"assertion": "x", "success": True}]}},
    }
    assert report(event("COMPLETE", outputs=[ok]))["dq_errors"] == 0


def test_nominal_time_is_kept_in_utc() -> None:
    facets = {
        "nominalTime": {
            "nominalStartTime": "2026-11-22T02:00:00+01:00",
            "nominalEndTime": "2026-11-23T01:00:00Z",
        }
    }
    got = report(event(run={"runId": RUN, "facets": facets}))
    assert got["custom_stats"] == {
        "nominal_start_time": "2026-11-22T01:00:00Z",
        "nominal_end_time": "2026-11-23T01:00:00Z",
    }


def test_tags_set_env_project_and_labels_and_run_tags_win() -> None:
    job = {
        "namespace": "etl",
        "name": "load_sales",
        "facets": {
            "jobType": {"processingType": "BATCH", "integration": "SPARK", "jobType": "SQL_JOB"},
            "tags": {"tags": [{"key": "env", "value": "test"}, {"key": "team", "value": "crm"}]},
        },
    }
    run_tags = {
        "tags": {
            "tags": [
                {"key": "environment", "value": "prod", "source": "CONFIG"},
                {"key": "project", "value": "retail"},
            ]
        }
    }
    got = report(event(job=job, run={"runId": RUN, "facets": run_tags}), Defaults(env="dev"))
    assert got["env"] == "prod"
    assert got["project"] == "retail"
    assert got["labels"] == {
        "namespace": "etl",
        "team": "crm",
        "integration": "spark",
        "job_type": "sql_job",
    }


def test_request_defaults_apply_when_the_event_names_no_env() -> None:
    got = report(event(), Defaults(env="prod", project="retail"))
    assert (got["env"], got["project"]) == ("prod", "retail")


# -- parsing and validation ------------------------------------------------------------


def body(data: Any) -> bytes:
    return orjson.dumps(data)


def test_one_event_or_a_list() -> None:
    reports, locate, ignored = parse_events(body(event()), 10)
    assert [r["run_id"] for r in reports] == [RUN] and locate(0) == "event" and ignored == 0
    reports, locate, _ = parse_events(body([event(), event("COMPLETE")]), 10)
    assert len(reports) == 2 and locate(1) == "events[1]"


def test_dataset_and_job_events_are_ignored_and_the_rest_renumbered() -> None:
    dataset_event = {
        "eventTime": "2026-11-23T03:00:00Z",
        "producer": "p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {"namespace": "n", "name": "t"},
    }
    job_event = {
        "eventTime": "2026-11-23T03:00:00Z",
        "producer": "p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
        "job": {"namespace": "n", "name": "j"},
    }
    reports, locate, ignored = parse_events(body([dataset_event, job_event, event()]), 10)
    assert ignored == 2 and len(reports) == 1
    assert locate(0) == "events[2]"


def problems(data: Any) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse_events(body(data), 10)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({**event(), "eventTime": None}, ["event.eventTime: Input should be a valid datetime"]),
        (
            {k: v for k, v in event().items() if k != "eventTime"},
            ["event.eventTime: Field required"],
        ),
        (
            [event(), {**event(), "eventTime": "2026-11-23T03:00:00"}],
            ["events[1].eventTime: must include a time zone offset (e.g. 2026-01-31T02:00:00Z)"],
        ),
        (
            event("DONE"),
            [
                "event.eventType: Input should be 'START', 'RUNNING', 'COMPLETE', 'ABORT', "
                "'FAIL' or 'OTHER'"
            ],
        ),
        ({**event(), "run": {}}, ["event.run.runId: Field required"]),
        ({k: v for k, v in event().items() if k != "run"}, ["event.run: Field required"]),
        (
            {**event(), "job": {"namespace": "n", "name": ""}},
            ["event.job.name: String should have at least 1 character"],
        ),
        (
            event(
                "COMPLETE",
                outputs=[
                    {
                        "namespace": "n",
                        "name": "t",
                        "outputFacets": {"outputStatistics": {"rowCount": -1}},
                    }
                ],
            ),
            [
                "event.outputs[0].outputFacets.outputStatistics.rowCount: "
                "Input should be greater than or equal to 0"
            ],
        ),
        (
            event(
                "FAIL", run={"runId": RUN, "facets": {"errorMessage": {"programmingLanguage": "x"}}}
            ),
            ["event.run.facets.errorMessage.message: Field required"],
        ),
        (
            event(run={"runId": RUN, "facets": {"parent": {"run": {"runId": "p"}}}}),
            ["event.run.facets.parent.job: Field required"],
        ),
        ([event(), 3], ["events[1]: must be an OpenLineage RunEvent object"]),
        ("START", ["body: must be an OpenLineage RunEvent object or a list of them"]),
        ([], ["events: must contain at least one event"]),
    ],
)
def test_invalid_events_are_named(data: Any, expected: list[str]) -> None:
    assert problems(data) == expected


def test_every_bad_event_of_a_list_is_named() -> None:
    bad = [{**event(), "eventTime": "soon"}, event(), {**event(), "job": {"name": "x"}}]
    assert problems(bad) == [
        "events[0].eventTime: Input should be a valid datetime or date, input is too short",
        "events[2].job.namespace: Field required",
    ]


def test_not_json_and_too_many() -> None:
    with pytest.raises(BadJson, match="body is not valid JSON"):
        parse_events(b"{nope", 10)
    with pytest.raises(TooManyEvents, match="events: at most 2 events per request, got 3"):
        parse_events(body([event()] * 3), 2)
