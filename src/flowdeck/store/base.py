"""The Store interface: everything flowdeck keeps goes through it.

Two backends implement it (DuckDB, PostgreSQL) on top of the shared SQL in ``sql.py``. Driver
errors never leave a store: they become :class:`flowdeck.errors.StoreUnavailable`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flowdeck.pipelines import PipelineKey, PipelineState
from flowdeck.runs import RunRecord

BatchKey = tuple[str, str]  # (project, batch_id)
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch's stored aggregates, kept up to date by the writer at each commit."""

    project: str
    batch_id: str
    env: str
    started_at: datetime | None
    ended_at: datetime | None
    sort_at: datetime
    total: int
    succeeded: int
    failed: int
    running: int
    pending: int
    rows_read: int
    rows_written: int
    rows_invalid: int
    rows_inserted: int
    rows_updated: int
    dq_errors: int
    dq_warning_processes: int
    updated_at: datetime

    @property
    def key(self) -> BatchKey:
        return (self.project, self.batch_id)

    @property
    def open(self) -> bool:
        return self.running + self.pending > 0


@dataclass(frozen=True, slots=True)
class BatchQuery:
    since: datetime
    until: datetime | None = None
    env: str | None = None
    project: str | None = None
    limit: int = 200


@dataclass(frozen=True, slots=True)
class RunQuery:
    project: str
    batch_id: str
    statuses: Sequence[str] = ()
    sort: str = "pipeline"
    order: SortOrder = "asc"
    limit: int | None = 50
    offset: int = 0


@dataclass(slots=True)
class WritePlan:
    """What the writer decided to store once it saw the runs already stored."""

    records: list[RunRecord]
    batch_keys: set[BatchKey]
    # True when a run left a batch, which may now be empty and must go.
    moved: bool = False


class Store(abc.ABC):
    """Persistence of runs and batches. Methods named ``get_*`` raise
    :class:`flowdeck.errors.NotFound` for an unknown id; every method raises
    :class:`flowdeck.errors.StoreUnavailable` when the database fails."""

    backend: str
    url: str

    @abc.abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version now in force."""

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def flush_pipelines(self) -> None:
        """Write the pipeline states kept back from their table, if any (writer thread).
        A store that keeps none back has nothing to do."""
        return None

    def pipelines_flush_in(self) -> float | None:
        """How long an idle writer may wait before ``flush_pipelines`` (None: no need)."""
        return None

    def pipelines_kept_back(self) -> int:
        """How many pipeline states wait to be written to their table."""
        return 0

    # -- writes: only the writer thread calls these ------------------------------------
    @abc.abstractmethod
    def upsert_runs(
        self, run_ids: Collection[str], plan: Callable[[dict[str, RunRecord]], WritePlan]
    ) -> list[BatchRow]:
        """In one transaction: read the stored runs among ``run_ids``, call ``plan`` with them
        (keyed by run_id), upsert the records it returns, refresh the aggregates of its batch
        keys and bring the state of every pipeline it touched up to date. Returns the
        refreshed batches (a batch left without runs is removed). Nothing is written when
        ``plan`` raises."""

    # -- reads ---------------------------------------------------------------------------
    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord: ...

    @abc.abstractmethod
    def get_runs(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        """The stored runs of these ids, by id (ids not stored are left out)."""

    @abc.abstractmethod
    def list_pipeline_runs(
        self, project: str, pipeline: str, env: str, limit: int
    ) -> list[RunRecord]:
        """A pipeline's runs in one env, newest first."""

    @abc.abstractmethod
    def list_recent_runs(
        self, since: datetime, limit: int, project: str | None = None, env: str | None = None
    ) -> dict[PipelineKey, list[RunRecord]]:
        """Of each pipeline's runs that sort at ``since`` or later, the newest ``limit``,
        newest first: one read for every pipeline in the project and env (or all)."""

    @abc.abstractmethod
    def list_batches(self, query: BatchQuery) -> list[BatchRow]:
        """Batches started in the window, newest first."""

    @abc.abstractmethod
    def find_batches(self, batch_id: str) -> list[BatchRow]:
        """Batches with this id, one per project."""

    @abc.abstractmethod
    def get_batch(self, project: str, batch_id: str) -> BatchRow: ...

    @abc.abstractmethod
    def list_batch_runs(self, query: RunQuery) -> tuple[int, list[RunRecord]]:
        """(number of matching runs, the requested page of them)."""

    @abc.abstractmethod
    def list_pipelines(
        self, project: str | None = None, env: str | None = None
    ) -> list[PipelineState]: ...

    @abc.abstractmethod
    def count_runs(self) -> int: ...
