"""Pydantic models of the API: what pipelines send and what flowdeck answers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    with_config,
)
from typing_extensions import TypedDict

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(max_length=1000)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Count = Annotated[int, Field(ge=0, le=2**62)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Status(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


StatusName = Literal["PENDING", "RUNNING", "SUCCESS", "FAILED"]


@with_config(ConfigDict(extra="forbid"))
class RunIn(TypedDict, total=False):
    """One run as a pipeline reports it. Every field may be left out (or null) but a new
    run needs ``pipeline``; a later report about the same ``run_id`` fills in or updates
    fields. Validated as a TypedDict: plain dicts in, plain dicts out, fast on 10,000 runs."""

    run_id: Annotated[Name | None, Field(description="idempotency key; generated if absent")]
    project: Annotated[Name | None, Field(description="tenant / scope; default 'default'")]
    pipeline: Annotated[Name | None, Field(description="process / data contract name")]
    batch_id: Annotated[Name | StrictInt | None, Field(description="process_queue_id")]
    env: Annotated[Name | None, Field(description="dev / test / prod or any name")]
    status: StatusName | None
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    duration_s: NonNegative | None
    rows_read: Count | None
    rows_written: Count | None
    rows_invalid: Count | None
    rows_inserted: Count | None
    rows_updated: Count | None
    dq_errors: Count | None
    read_throughput: NonNegative | None
    write_throughput: NonNegative | None
    custom_stats: dict[str, Any] | None
    labels: dict[LabelKey, Label] | None
    error_message: Annotated[str, StringConstraints(max_length=65_536)] | None


class RunOut(BaseModel):
    run_id: str
    project: str
    pipeline: str
    batch_id: str
    env: str
    status: Status
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    rows_read: int | None
    rows_written: int | None
    rows_invalid: int | None
    rows_inserted: int | None
    rows_updated: int | None
    dq_errors: int
    dq_error_rate: float | None = Field(description="dq_errors / rows_read")
    read_throughput: float | None
    write_throughput: float | None
    custom_stats: dict[str, Any]
    labels: dict[str, str]
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class Accepted(BaseModel):
    accepted: int = Field(description="runs committed by this request")


class Health(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class BatchCounts(BaseModel):
    total: int
    succeeded: int
    failed: int
    running: int
    pending: int


class BatchOut(BatchCounts):
    project: str
    batch_id: str
    env: str
    started_at: datetime | None = Field(description="earliest start of its runs")
    ended_at: datetime | None = Field(description="latest end; null while any run is open")
    success_rate: float
    health: Health
    health_reason: str = Field(
        description="why, in the batch's numbers: '2 processes failed, 38 still running or "
        "pending', '27 of 31 succeeded, under 90 %', 'every process succeeded'"
    )


class RowTotals(BaseModel):
    read: int
    written: int
    invalid: int
    inserted: int
    updated: int


class BatchSummaryOut(BatchOut):
    dq_errors: int
    dq_error_rate: float | None
    dq_warning_processes: int = Field(description="processes whose DQ error rate is above 1 %")
    rows: RowTotals
    duration_s: float | None = Field(description="wall time from first start to last end")
    updated_at: datetime


class BatchList(BaseModel):
    items: list[BatchOut]


class RunPage(BaseModel):
    total: int
    page: int
    page_size: int
    pages: int
    sort: str
    order: Literal["asc", "desc"]
    items: list[RunOut]


class RunDetail(RunOut):
    history: list[RunOut] = Field(description="the pipeline's most recent runs in this env")


class PipelineOut(BaseModel):
    project: str
    pipeline: str
    env: str
    runs: int
    last_run_id: str
    last_run_at: datetime
    last_status: Status
    last_success_at: datetime | None
    seconds_since_success: float | None
    consecutive_failures: int


class PipelineList(BaseModel):
    items: list[PipelineOut]
