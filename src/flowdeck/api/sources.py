"""GET /api/v1/sources, /api/v1/sources/{pipeline} and /api/v1/sources/by/{label}/{value}:
freshness, failures and the trend of a numeric field per pipeline or per label value (the
sources pages' twins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from flowdeck.alerts.rules import Rule
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.models import Status
from flowdeck.sources import get_source, get_source_group, list_sources

router = APIRouter(tags=["sources"])
Svc = Annotated[Services, Depends(services)]

FIELD_DOC = (
    "the numeric field of the trend: rows_written, rows_read, rows_inserted, rows_updated, "
    "dq_errors, duration_s or a custom_stats key such as sku_count"
)


class TrendPoint(BaseModel):
    t: datetime = Field(description="the run's start (its first report when it has none)")
    value: float | None = Field(description="the field in this run; summed per batch by label")
    status: Status
    batch_id: str


class SourceOut(BaseModel):
    key: str = Field(description="the pipeline, or the label value")
    project: str
    env: str
    pipeline: str | None = Field(description="null when grouped by a label")
    label: str | None = None
    pipelines: int = Field(description="pipelines in this source")
    members: list[str] | None = Field(None, description="the pipelines of a label value")
    labels: dict[str, str] = Field(description="the labels of the pipeline's last run")
    runs: int
    last_run_id: str
    last_run_at: datetime
    status: Status = Field(description="the last run's status (the worst, by label)")
    last_success_at: datetime | None
    seconds_since_success: float | None
    consecutive_failures: int
    stale: bool = Field(description="no success within stale_after_s")
    stale_pipelines: int | None = None
    stale_after_s: float = Field(
        description="the smallest max_age of the enabled stale rules watching it, else 4 h"
    )
    stale_rule: str | None = Field(description="the rule that set stale_after_s")
    failures: int = Field(description="failed runs among the recent ones")
    recent_runs: int
    latest_value: float | None = Field(description="the field in the latest successful run")
    trend: list[TrendPoint] = Field(description="the last 30 runs (batches by label), oldest first")


class SourceList(BaseModel):
    by: str
    field: str
    fields: list[str] = Field(description="fields a trend can show (numeric custom_stats too)")
    labels: list[str] = Field(description="label names the pipelines carry")
    default_stale_after_s: float
    total: int
    stale: int
    failing: int
    items: list[SourceOut] = Field(description="stale first, then failing, then by name")


class HistoryRun(BaseModel):
    run_id: str
    batch_id: str
    status: Status
    t: datetime
    value: float | None
    duration_s: float | None
    rows_read: int | None
    rows_written: int | None
    dq_errors: int | None


class FailedRun(BaseModel):
    run_id: str
    batch_id: str
    t: datetime
    ended_at: datetime | None
    error_message: str | None


class PipelineSource(BaseModel):
    """One pipeline of a label value, with its state."""

    key: str
    project: str
    env: str
    pipeline: str
    labels: dict[str, str]
    runs: int
    last_run_id: str
    last_run_at: datetime
    status: Status
    last_success_at: datetime | None
    seconds_since_success: float | None
    consecutive_failures: int
    stale: bool
    stale_after_s: float
    stale_rule: str | None
    failures: int
    recent_runs: int
    latest_value: float | None


class SourceDetail(PipelineSource):
    field: str
    fields: list[str]
    history: list[HistoryRun] = Field(description="up to 500 runs, oldest first")
    failure_history: list[FailedRun] = Field(description="the failed runs, newest first")


class BatchPoint(BaseModel):
    t: datetime = Field(description="the earliest start of the batch's runs of these pipelines")
    batch_id: str
    value: float | None = Field(description="the field summed over the batch's runs")
    status: Status = Field(description="the worst status of those runs")
    runs: int = Field(description="runs of these pipelines in the batch")
    failed: int


class GroupFailedRun(FailedRun):
    pipeline: str


class SourceGroupDetail(BaseModel):
    key: str = Field(description="the label value")
    label: str
    project: str
    env: str
    pipelines: int
    members: list[str]
    labels: dict[str, str]
    runs: int
    last_run_id: str
    last_run_at: datetime
    status: Status = Field(description="the worst of the pipelines' last runs")
    last_success_at: datetime | None
    seconds_since_success: float | None
    consecutive_failures: int = Field(description="the most of any pipeline")
    stale: bool = Field(description="any pipeline stale")
    stale_pipelines: int
    stale_after_s: float
    failures: int
    recent_runs: int
    latest_value: float | None
    field: str
    fields: list[str]
    sources: list[PipelineSource] = Field(description="stale first, then failing, then by name")
    history: list[BatchPoint] = Field(
        description="per batch over the last 500 runs of each pipeline, oldest first"
    )
    failure_history: list[GroupFailedRun] = Field(description="the failed runs, newest first")


def rules_of(svc: Services) -> Sequence[Rule]:
    """The rules in force (none while alerting is not running: the default threshold)."""
    return list(svc.alerts.rules().values()) if svc.alerts is not None else []


def sources_in(
    svc: Services, by: str, field: str, project: str | None, env: str | None
) -> dict[str, Any]:
    return list_sources(
        svc.store, rules_of(svc), svc.clock(), by=by, field=field, project=project, env=env
    )


def source_in(
    svc: Services, pipeline: str, field: str, project: str | None, env: str | None
) -> dict[str, Any]:
    return get_source(
        svc.store, rules_of(svc), svc.clock(), pipeline, field=field, project=project, env=env
    )


def source_group_in(
    svc: Services, label: str, value: str, field: str, project: str | None, env: str | None
) -> dict[str, Any]:
    return get_source_group(
        svc.store, rules_of(svc), svc.clock(), label, value, field=field, project=project, env=env
    )


@router.get("/sources", response_model=SourceList, summary="Sources: freshness and trends")
def get_sources(
    svc: Svc,
    by: Annotated[
        str, Query(description="pipeline, or a label name (retailer) to group by")
    ] = "pipeline",
    field: Annotated[str, Query(description=FIELD_DOC)] = "rows_written",
    project: str | None = None,
    env: str | None = None,
) -> Response:
    return JSON(sources_in(svc, by, field, project or None, env or None))


@router.get(
    "/sources/{pipeline}",
    response_model=SourceDetail,
    summary="One pipeline as a source: full trend and failure history",
)
def get_one_source(
    pipeline: str,
    svc: Svc,
    field: Annotated[str, Query(description=FIELD_DOC)] = "rows_written",
    project: str | None = None,
    env: Annotated[
        str | None, Query(description="required when the pipeline runs in several envs")
    ] = None,
) -> Response:
    return JSON(source_in(svc, pipeline, field, project or None, env or None))


@router.get(
    "/sources/by/{label}/{value:path}",
    response_model=SourceGroupDetail,
    summary="One label value as a source: its pipelines, summed trend and failures",
)
def get_source_group_of(
    label: str,
    value: str,
    svc: Svc,
    field: Annotated[str, Query(description=FIELD_DOC)] = "rows_written",
    project: str | None = None,
    env: Annotated[
        str | None, Query(description="required when the value is found in several envs")
    ] = None,
) -> Response:
    return JSON(source_group_in(svc, label, value, field, project or None, env or None))
