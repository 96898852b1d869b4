"""The batch dashboard: what the URL selects, and the data the page shows for it.

Everything the user chose lives in the query string, so a link reproduces the view:
``/?env=prod&since=7d&batch=20261123&sort=duration_s&order=desc&page=2&status=FAILED``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from flowdeck.api.batches import PAGE_SIZES, find_batch
from flowdeck.api.services import Services
from flowdeck.batches import batch_out, batch_summary
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.models import Status
from flowdeck.runs import RunRecord
from flowdeck.store import BatchQuery, BatchRow, RunQuery
from flowdeck.store.sql import RUN_SORTS
from flowdeck.web.query import one, one_date

WINDOWS = ("24h", "7d", "30d", "custom")
MAX_LISTED_BATCHES = 500
STATUSES = tuple(s.value for s in Status)
DEFAULT_PAGE_SIZE = 50

# The process table: (sort key, heading, numeric). Sort keys are the API's.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("pipeline", "Process", False),
    ("status", "Status", False),
    ("started_at", "Start (UTC)", False),
    ("ended_at", "End (UTC)", False),
    ("duration_s", "Duration", True),
    ("rows_read", "Rows read", True),
    ("rows_written", "Rows written", True),
    ("rows_updated", "Rows updated", True),
    ("rows_inserted", "Rows inserted", True),
    ("dq_errors", "DQ errors", True),
    ("read_throughput", "Read rows/s", True),
    ("write_throughput", "Write rows/s", True),
)


@dataclass(frozen=True, slots=True)
class Selection:
    """The view a dashboard URL names. Defaults are left out of links."""

    since: str = "7d"
    date_from: date | None = None
    date_to: date | None = None
    env: str | None = None
    project: str | None = None
    batch: str | None = None
    sort: str = "pipeline"
    order: Literal["asc", "desc"] = "asc"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    statuses: tuple[str, ...] = field(default=())

    def params(self, **changes: Any) -> dict[str, str]:
        sel = replace(self, **changes)
        out: dict[str, str] = {}
        if sel.since != "7d":
            out["since"] = sel.since
        if sel.since == "custom":
            if sel.date_from:
                out["from"] = sel.date_from.isoformat()
            if sel.date_to:
                out["to"] = sel.date_to.isoformat()
        for name in ("env", "project", "batch"):
            if value := getattr(sel, name):
                out[name] = value
        if sel.sort != "pipeline":
            out["sort"] = sel.sort
        if sel.order != "asc":
            out["order"] = sel.order
        if sel.page != 1:
            out["page"] = str(sel.page)
        if sel.page_size != DEFAULT_PAGE_SIZE:
            out["page_size"] = str(sel.page_size)
        if sel.statuses:
            out["status"] = ",".join(sel.statuses)
        return out

    def url(self, **changes: Any) -> str:
        query = urlencode(self.params(**changes))
        return f"/?{query}" if query else "/batches"

    def sort_url(self, column: str) -> str:
        """Sort by ``column``; again on the current column flips the order."""
        if column == self.sort:
            return self.url(order="desc" if self.order == "asc" else "asc", page=1)
        numeric = any(key == column and num for key, _, num in COLUMNS)
        return self.url(sort=column, order="desc" if numeric else "asc", page=1)

    def window(self, now: datetime) -> tuple[datetime, datetime | None]:
        if self.since == "custom":
            start = self.date_from or (now - timedelta(days=7)).date()
            end = (
                datetime.combine(self.date_to + timedelta(days=1), time(), UTC)
                if self.date_to
                else None
            )
            return datetime.combine(start, time(), UTC), end
        amount, unit = int(self.since[:-1]), self.since[-1]
        return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount)), None


def _int(params: QueryParams, name: str, default: int) -> int:
    raw = one(params, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput([FieldProblem(name, f"must be a whole number; got {raw!r}")]) from None
    if value < 1:
        raise InvalidInput([FieldProblem(name, "must be 1 or more")])
    return value


def parse_selection(params: QueryParams) -> Selection:
    """The selection in a dashboard URL; InvalidInput names the parameter and the rule."""
    problems: list[FieldProblem] = []
    since = one(params, "since") or "7d"
    if since not in WINDOWS:
        problems.append(FieldProblem("since", f"must be one of {', '.join(WINDOWS)}"))
    sort = one(params, "sort") or "pipeline"
    if sort not in RUN_SORTS:
        problems.append(FieldProblem("sort", f"unknown column {sort!r}"))
    order = one(params, "order") or "asc"
    if order not in ("asc", "desc"):
        problems.append(FieldProblem("order", "must be asc or desc"))
    page_size = _int(params, "page_size", DEFAULT_PAGE_SIZE)
    if page_size not in PAGE_SIZES:
        problems.append(FieldProblem("page_size", "must be one of 25, 50, 100"))
    statuses: list[str] = []
    for raw in params.getlist("status"):
        for name in raw.split(","):
            name = name.strip().upper()
            if not name:
                continue
            if name not in STATUSES:
                problems.append(FieldProblem("status", f"unknown status {name!r}"))
            elif name not in statuses:
                statuses.append(name)
    date_from, date_to = one_date(params, "from"), one_date(params, "to")
    if date_from and date_to and date_to < date_from:
        problems.append(FieldProblem("to", "must not be before from"))
    if problems:
        raise InvalidInput(problems)
    return Selection(
        since=since,
        date_from=date_from,
        date_to=date_to,
        env=one(params, "env"),
        project=one(params, "project"),
        batch=one(params, "batch"),
        sort=sort,
        order="desc" if order == "desc" else "asc",
        page=_int(params, "page", 1),
        page_size=page_size,
        statuses=tuple(s for s in STATUSES if s in statuses),
    )


@dataclass(slots=True)
class Dashboard:
    selection: Selection
    now: datetime
    envs: list[str]
    batches: list[dict[str, Any]]
    batch: dict[str, Any] | None = None
    # The selected batch is not among the filtered ones (a link to an older batch).
    outside_filter: bool = False
    total_runs: int = 0
    pages: int = 1
    runs: list[RunRecord] = field(default_factory=list)
    pinned: Selection | None = None


def chosen_batch(svc: Services, sel: Selection, listed: list[BatchRow]) -> BatchRow | None:
    if sel.batch is None:
        return listed[0] if listed else None
    for row in listed:
        if row.batch_id == sel.batch and (sel.project is None or row.project == sel.project):
            return row
    return find_batch(svc, sel.batch, sel.project)


def load_dashboard(svc: Services, sel: Selection, *, with_list: bool = True) -> Dashboard:
    """The data of the page (``with_list=False``: only the batch and its process page, for
    live refreshes of the cards and the table)."""
    now = svc.clock()
    listed: list[BatchRow] = []
    envs: list[str] = []
    if with_list or sel.batch is None:
        since, until = sel.window(now)
        query = BatchQuery(
            since=since, until=until, env=sel.env, project=sel.project, limit=MAX_LISTED_BATCHES
        )
        listed = svc.store.list_batches(query)
    if with_list:
        envs = sorted({p.env for p in svc.store.list_pipelines(project=sel.project)})
    board = Dashboard(selection=sel, now=now, envs=envs, batches=[batch_out(b) for b in listed])
    row = chosen_batch(svc, sel, listed)
    if row is None:
        return board
    if all(b.key != row.key for b in listed):
        board.outside_filter = True
        board.batches.insert(0, batch_out(row))
    board.batch = batch_summary(row)
    # Links and live refreshes keep showing this batch even when a newer one starts.
    board.pinned = replace(sel, batch=row.batch_id, project=row.project)
    board.total_runs, board.runs = svc.store.list_batch_runs(
        RunQuery(
            project=row.project,
            batch_id=row.batch_id,
            statuses=sel.statuses,
            sort=sel.sort,
            order=sel.order,
            limit=sel.page_size,
            offset=(sel.page - 1) * sel.page_size,
        )
    )
    board.pages = max(1, math.ceil(board.total_runs / sel.page_size))
    return board
