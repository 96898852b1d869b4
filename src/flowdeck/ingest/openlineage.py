"""OpenLineage RunEvents as flowdeck run reports (DESIGN.md, ``POST /lineage``).

Each RunEvent becomes one report for the single writer, whose merge rules make the result
independent of the order events arrive in and of duplicates: status never moves backwards,
and a late event only fills fields still empty. Only fields that do not depend on arrival
order are mapped (a START's time is the start; a RUNNING event carries no time).

Mapping, in short: job.name → pipeline (job.namespace → label ``namespace``); run.runId →
run_id; the parent run facet → batch_id (its root run when it names one, so an Airflow DAG
run or a Spark application groups everything under it; else the run is a batch of its own);
START/RUNNING → RUNNING (START sets started_at); COMPLETE → SUCCESS; FAIL/ABORT → FAILED
(ended_at from the event time); errorMessage → error_message; input/output statistics →
rows_read/rows_written and bytes; data-quality assertions and metrics → dq_errors and
custom_stats; nominalTime → custom_stats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from flowdeck.errors import FieldProblem, InvalidInput

Report = dict[str, Any]
Locate = Callable[[int], str]

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LabelValue = Annotated[str, StringConstraints(max_length=1000)]
Count = Annotated[int, Field(ge=0, le=2**62)]

MAX_ERROR_CHARS: Final = 65_536
MAX_LISTED: Final = 100  # dataset and assertion names kept in custom_stats
# Tags that set a run field instead of becoming labels.
ENV_TAGS: Final = ("env", "environment")
PROJECT_TAGS: Final = ("project",)

_T = TypeVar("_T")


def _live(value: Any) -> Any:
    """A facet marked ``{"_deleted": true}`` is as good as absent."""
    if isinstance(value, dict) and value.get("_deleted") is True:
        return None
    return value


Facet = Annotated[_T | None, BeforeValidator(_live)]


class _Open(BaseModel):
    # OpenLineage objects carry many facets flowdeck does not read; they are let through.
    model_config = ConfigDict(extra="allow", frozen=True)


class RunRef(_Open):
    runId: Name


class JobRef(_Open):
    namespace: Annotated[str, StringConstraints(max_length=1000)]
    name: Name


class RootFacet(_Open):
    run: RunRef
    job: JobRef


class ParentFacet(_Open):
    run: RunRef
    job: JobRef
    root: Facet[RootFacet] = None


class ErrorMessageFacet(_Open):
    message: str
    programmingLanguage: str | None = None
    stackTrace: str | None = None


class NominalTimeFacet(_Open):
    nominalStartTime: AwareDatetime
    nominalEndTime: AwareDatetime | None = None


class Tag(_Open):
    key: LabelKey
    value: LabelValue
    source: str | None = None


class TagsFacet(_Open):
    tags: list[Tag] = []


class RunFacets(_Open):
    parent: Facet[ParentFacet] = None
    errorMessage: Facet[ErrorMessageFacet] = None
    nominalTime: Facet[NominalTimeFacet] = None
    tags: Facet[TagsFacet] = None


class Run(_Open):
    runId: Name
    facets: RunFacets | None = None


class JobTypeFacet(_Open):
    processingType: str | None = None
    integration: str | None = None
    jobType: str | None = None


class JobFacets(_Open):
    jobType: Facet[JobTypeFacet] = None
    tags: Facet[TagsFacet] = None


class Job(JobRef):
    facets: JobFacets | None = None


class Statistics(_Open):
    rowCount: Count | None = None
    size: Count | None = None
    fileCount: Count | None = None


class Assertion(_Open):
    assertion: str
    success: bool
    column: str | None = None
    name: str | None = None


class AssertionsFacet(_Open):
    assertions: list[Assertion]


class ColumnMetrics(_Open):
    nullCount: Count | None = None
    distinctCount: Count | None = None


class MetricsFacet(_Open):
    rowCount: Count | None = None
    bytes: Count | None = None
    columnMetrics: dict[str, ColumnMetrics] = {}


class DatasetFacets(_Open):
    dataQualityAssertions: Facet[AssertionsFacet] = None
    dataQualityMetrics: Facet[MetricsFacet] = None


class InputFacets(DatasetFacets):
    inputStatistics: Facet[Statistics] = None


class OutputFacets(_Open):
    outputStatistics: Facet[Statistics] = None


class Dataset(_Open):
    namespace: str
    name: str
    facets: DatasetFacets | None = None


class InputDataset(Dataset):
    inputFacets: InputFacets | None = None


class OutputDataset(Dataset):
    outputFacets: OutputFacets | None = None


EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]


class RunEvent(_Open):
    eventType: EventType | None = None
    eventTime: AwareDatetime
    run: Run
    job: Job
    inputs: list[InputDataset] | None = None
    outputs: list[OutputDataset] | None = None
    producer: str | None = None
    schemaURL: str | None = None


@dataclass(frozen=True, slots=True)
class Defaults:
    """What an event cannot say for itself, from the request (``?env=``, ``?project=``)."""

    env: str | None = None
    project: str | None = None


class TooManyEvents(ValueError):
    """More events than one request may carry (HTTP 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"events: at most {limit} events per request, got {count}")


class BadJson(ValueError):
    """The body is not JSON at all (HTTP 400)."""


STATUS: Final[dict[str | None, str | None]] = {
    "START": "RUNNING",
    "RUNNING": "RUNNING",
    "COMPLETE": "SUCCESS",
    "FAIL": "FAILED",
    "ABORT": "FAILED",
    "OTHER": None,
    None: None,
}


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


def _dataset_name(ds: Dataset) -> str:
    return f"{ds.namespace}/{ds.name}" if ds.namespace else ds.name


def _add(stats: dict[str, Any], key: str, value: int | None) -> None:
    if value is not None:
        stats[key] = stats.get(key, 0) + value


def _tags(facets: RunFacets | JobFacets | None) -> list[Tag]:
    if facets is None or facets.tags is None:
        return []
    return facets.tags.tags


def event_report(event: RunEvent, defaults: Defaults = Defaults()) -> Report:
    """The run report one RunEvent stands for (a pure function of the event)."""
    run_facets = event.run.facets or RunFacets()
    job_facets = event.job.facets or JobFacets()
    report: Report = {"run_id": event.run.runId, "pipeline": event.job.name}
    labels: dict[str, str] = {}
    stats: dict[str, Any] = {}
    if event.job.namespace:
        labels["namespace"] = event.job.namespace

    # Job tags first, so that a run's own tag wins over its job's.
    env, project = defaults.env, defaults.project
    for tag in [*_tags(job_facets), *_tags(run_facets)]:
        key = tag.key.lower()
        if key in ENV_TAGS and tag.value:
            env = tag.value[:200]
        elif key in PROJECT_TAGS and tag.value:
            project = tag.value[:200]
        else:
            labels[tag.key] = tag.value
    if env:
        report["env"] = env
    if project:
        report["project"] = project

    kind = job_facets.jobType
    if kind is not None:
        if kind.integration:
            labels["integration"] = kind.integration.lower()[:1000]
        if kind.jobType:
            labels["job_type"] = kind.jobType.lower()[:1000]

    parent = run_facets.parent
    if parent is not None:
        top = parent.root or parent
        report["batch_id"] = top.run.runId
        labels["parent_job"] = parent.job.name[:1000]
        if parent.root is not None and parent.root.run.runId != parent.run.runId:
            stats["parent_run_id"] = parent.run.runId

    status = STATUS[event.eventType]
    if status is not None:
        report["status"] = status
    if event.eventType == "START":
        report["started_at"] = _utc(event.eventTime)
    elif status in ("SUCCESS", "FAILED"):
        report["ended_at"] = _utc(event.eventTime)

    error = run_facets.errorMessage
    if error is not None:
        text = error.message
        if error.stackTrace:
            text = f"{text}\n{error.stackTrace}"
        report["error_message"] = text[:MAX_ERROR_CHARS]
    elif event.eventType == "ABORT":
        report["error_message"] = "run aborted"

    nominal = run_facets.nominalTime
    if nominal is not None:
        stats["nominal_start_time"] = _iso(nominal.nominalStartTime)
        if nominal.nominalEndTime is not None:
            stats["nominal_end_time"] = _iso(nominal.nominalEndTime)

    inputs, outputs = event.inputs or [], event.outputs or []
    rows_read: int | None = None
    for ds in inputs:
        statistics = ds.inputFacets.inputStatistics if ds.inputFacets else None
        if statistics is not None:
            if statistics.rowCount is not None:
                rows_read = (rows_read or 0) + statistics.rowCount
            _add(stats, "bytes_read", statistics.size)
            _add(stats, "files_read", statistics.fileCount)
    rows_written: int | None = None
    for out in outputs:
        statistics = out.outputFacets.outputStatistics if out.outputFacets else None
        if statistics is not None:
            if statistics.rowCount is not None:
                rows_written = (rows_written or 0) + statistics.rowCount
            _add(stats, "bytes_written", statistics.size)
            _add(stats, "files_written", statistics.fileCount)
    if rows_read is not None:
        report["rows_read"] = rows_read
    if rows_written is not None:
        report["rows_written"] = rows_written
    if inputs:
        stats["inputs"] = [_dataset_name(ds) for ds in inputs[:MAX_LISTED]]
    if outputs:
        stats["outputs"] = [_dataset_name(ds) for ds in outputs[:MAX_LISTED]]

    _data_quality(inputs, outputs, report, stats)
    report["labels"] = labels
    if stats:
        report["custom_stats"] = stats
    return report


def _data_quality(
    inputs: list[InputDataset], outputs: list[OutputDataset], report: Report, stats: Report
) -> None:
    """Assertions and metrics from any dataset, as input facets or dataset facets."""
    checked = 0
    failed: list[str] = []
    metrics: dict[str, Any] = {}
    nulls: int | None = None
    datasets: list[Dataset] = [*inputs, *outputs]
    for ds in datasets:
        facet_sets: list[DatasetFacets] = [f for f in (ds.facets,) if f is not None]
        if isinstance(ds, InputDataset) and ds.inputFacets is not None:
            facet_sets.append(ds.inputFacets)
        name = _dataset_name(ds)
        for facets in facet_sets:
            if facets.dataQualityAssertions is not None:
                for a in facets.dataQualityAssertions.assertions:
                    checked += 1
                    if not a.success:
                        what = a.name or a.assertion
                        column = f".{a.column}" if a.column else ""
                        failed.append(f"{name}{column}: {what}")
            m = facets.dataQualityMetrics
            if m is not None:
                entry: dict[str, Any] = {}
                if m.rowCount is not None:
                    entry["row_count"] = m.rowCount
                if m.bytes is not None:
                    entry["bytes"] = m.bytes
                null_counts = {
                    col: cm.nullCount
                    for col, cm in m.columnMetrics.items()
                    if cm.nullCount is not None
                }
                if null_counts:
                    entry["null_counts"] = null_counts
                    nulls = (nulls or 0) + sum(null_counts.values())
                metrics[name] = entry
    if checked:
        # OpenLineage reports tests, not failing rows: dq_errors counts failed assertions.
        report["dq_errors"] = len(failed)
        stats["dq_assertions"] = checked
        stats["dq_assertions_failed"] = len(failed)
        if failed:
            stats["dq_failed_assertions"] = failed[:MAX_LISTED]
    if metrics:
        stats["dq_metrics"] = dict(list(metrics.items())[:MAX_LISTED])
    if nulls is not None:
        stats["dq_null_values"] = nulls


# -- the request body ---------------------------------------------------------------------

_STATIC_EVENTS: Final = ("/DatasetEvent", "/JobEvent")


def is_static_event(item: dict[str, Any]) -> bool:
    """A DatasetEvent or JobEvent: lineage without a run, which flowdeck has no use for."""
    schema = item.get("schemaURL")
    if isinstance(schema, str) and schema.endswith(_STATIC_EVENTS):
        return True
    return "run" not in item and "dataset" in item


def _where(prefix: str, loc: tuple[int | str, ...]) -> str:
    where = prefix
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return where


def _problems(error: ValidationError, prefix: str) -> list[FieldProblem]:
    out: list[FieldProblem] = []
    for item in error.errors(include_url=False):
        # Pydantic names a function validator in the location; clients never wrote it.
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        msg = item["msg"]
        if item["type"] == "timezone_aware":
            msg = "must include a time zone offset (e.g. 2026-01-31T02:00:00Z)"
        out.append(FieldProblem(_where(prefix, loc), msg, item["type"]))
    return out


def locator(single: bool) -> Locate:
    return (lambda _i: "event") if single else (lambda i: f"events[{i}]")


def parse_events(
    body: bytes, max_events: int, defaults: Defaults = Defaults()
) -> tuple[list[Report], Locate, int]:
    """Validate a body holding one RunEvent or a list of them.

    Returns (reports, how to name the i-th report in errors, how many DatasetEvents and
    JobEvents were skipped). Raises InvalidInput naming every offending field (nothing is
    accepted then), BadJson for a body that is not JSON and TooManyEvents over
    ``max_events``.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from None
    single = not isinstance(data, list)
    items: list[Any] = [data] if single else data
    if not single and not items:
        raise InvalidInput([FieldProblem("events", "must contain at least one event")])
    if len(items) > max_events:
        raise TooManyEvents(len(items), max_events)
    locate = locator(single)
    reports: list[Report] = []
    problems: list[FieldProblem] = []
    ignored = 0
    for i, item in enumerate(items):
        where = locate(i)
        if not isinstance(item, dict):
            if single:
                msg = "must be an OpenLineage RunEvent object or a list of them"
                problems.append(FieldProblem("body", msg, "model_type"))
            else:
                msg = "must be an OpenLineage RunEvent object"
                problems.append(FieldProblem(where, msg, "model_type"))
            continue
        if is_static_event(item):
            ignored += 1
            continue
        try:
            event = RunEvent.model_validate(item)
        except ValidationError as exc:
            problems.extend(_problems(exc, where))
            continue
        reports.append(event_report(event, defaults))
    if problems:
        raise InvalidInput(problems)
    # Reports are numbered as they go to the writer; name them by their place in the body.
    if ignored:
        places = [i for i, item in enumerate(items) if not is_static_event(item)]

        def renumbered(i: int) -> str:
            return locate(places[i])

        return reports, renumbered, ignored
    return reports, locate, ignored
