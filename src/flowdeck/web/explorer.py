"""The metrics explorer: one metric (a reported one or a run metric), an aggregation,
group-by tags, a range and a step, drawn as a line or bar chart, with the shown series as
CSV. Everything chosen is in the URL:
``/explore?metric=api.latency_ms&aggregation=p95&group_by=region&since=7d&step=1h``.
The JSON twin is ``POST /api/v1/metrics/query`` (the page shows the body it sends).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final, get_args
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, FlowdeckError, InvalidInput
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries.batches import BATCH_METRICS, BATCH_TAGS
from flowdeck.timeseries.query import (
    Aggregation,
    MetricQuery,
    check_metric,
    plan_query,
    run_query,
)
from flowdeck.timeseries.runs import RUN_METRICS, RUN_TAGS
from flowdeck.web.pages import error_page, page
from flowdeck.web.query import one, one_date

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

AGGREGATIONS: Final = get_args(Aggregation)
RANGES: Final = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "custom": "Custom range",
}
STEPS: Final = {"1m": 60, "5m": 300, "15m": 900, "1h": 3_600, "6h": 21_600, "1d": 86_400}
# The step "auto" picks: the finest that draws at most this many buckets.
AUTO_BUCKETS: Final = 400
CHARTS: Final = ("line", "bar")
MAX_TABLE_ROWS: Final = 1_000


@dataclass(frozen=True, slots=True)
class Exploration:
    """What an explorer URL selects."""

    metric: str
    aggregation: str
    group_by: tuple[str, ...]
    since: str
    date_from: date | None
    date_to: date | None
    step: str  # "auto" or a key of STEPS
    chart: str
    project: str

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        if self.since == "custom":
            start = self.date_from or (now - timedelta(days=7)).date()
            end = self.date_to + timedelta(days=1) if self.date_to else None
            return (
                datetime.combine(start, time(), UTC),
                datetime.combine(end, time(), UTC) if end else now,
            )
        amount, unit = int(self.since[:-1]), self.since[-1]
        return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount)), now

    def step_seconds(self, start: datetime, end: datetime) -> int:
        if self.step != "auto":
            return STEPS[self.step]
        span = (end - start).total_seconds()
        return next((s for s in STEPS.values() if span / s <= AUTO_BUCKETS), 86_400)

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric,
            "aggregation": self.aggregation,
            "group_by": list(self.group_by),
            "since": self.since,
            "step": self.step,
            "chart": self.chart,
        }
        if self.since == "custom":
            out["from"] = self.date_from.isoformat() if self.date_from else ""
            out["to"] = self.date_to.isoformat() if self.date_to else ""
        if self.project != "default":
            out["project"] = self.project
        return out

    def url(self, path: str = "/explore") -> str:
        return f"{path}?{urlencode(self.params(), doseq=True)}"


def _date(params: QueryParams, name: str, problems: list[FieldProblem]) -> date | None:
    """The date, or None with its problem added to ``problems``."""
    try:
        return one_date(params, name)
    except InvalidInput as exc:
        problems.extend(exc.problems)
        return None


def parse_exploration(params: QueryParams, default_metric: str) -> Exploration:
    """The selection in an explorer URL; InvalidInput names the parameter and the rule."""
    problems: list[FieldProblem] = []
    metric = one(params, "metric") or default_metric
    try:
        check_metric(metric)
    except ValueError as exc:
        problems.append(FieldProblem("metric", str(exc)))
    aggregation = one(params, "aggregation") or ("count" if metric == "runs.count" else "avg")
    if aggregation not in AGGREGATIONS:
        problems.append(FieldProblem("aggregation", f"must be one of {', '.join(AGGREGATIONS)}"))
    group_by: list[str] = []
    for raw in params.getlist("group_by"):
        for tag in raw.split(","):
            tag = tag.strip()
            if tag and tag not in group_by:
                group_by.append(tag)
    if len(group_by) > 8 or any(len(t) > 100 for t in group_by):
        problems.append(FieldProblem("group_by", "at most 8 tag names of 100 characters"))
    since = one(params, "since") or "24h"
    if since not in RANGES:
        problems.append(FieldProblem("since", f"must be one of {', '.join(RANGES)}"))
    step = one(params, "step") or "auto"
    if step != "auto" and step not in STEPS:
        problems.append(FieldProblem("step", f"must be auto or one of {', '.join(STEPS)}"))
    chart = one(params, "chart") or "line"
    if chart not in CHARTS:
        problems.append(FieldProblem("chart", "must be line or bar"))
    date_from, date_to = _date(params, "from", problems), _date(params, "to", problems)
    if date_from and date_to and date_to < date_from:
        problems.append(FieldProblem("to", "must not be before from"))
    project = one(params, "project") or "default"
    if problems:
        raise InvalidInput(problems)
    return Exploration(
        metric, aggregation, tuple(group_by), since, date_from, date_to, step, chart, project
    )


def query_body(sel: Exploration, now: datetime) -> dict[str, Any]:
    """The POST /api/v1/metrics/query body that answers the selection."""
    start, end = sel.window(now)
    return {
        "metric": sel.metric,
        "aggregation": sel.aggregation,
        "group_by": list(sel.group_by),
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
        "step": sel.step_seconds(start, end),
        "project": sel.project,
    }


def explore(store: MetricsSql, sel: Exploration, now: datetime) -> dict[str, Any]:
    query = MetricQuery.model_validate(query_body(sel, now))
    return run_query(store, plan_query(query, None))


def number(value: float | None) -> str:
    """A metric value for the table: whole numbers with separators, others to 4 digits."""
    if value is None:
        return "–"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"


def step_text(seconds: int) -> str:
    return next((k for k, v in STEPS.items() if v == seconds), f"{seconds} s")


def series_name(tags: dict[str, str | None]) -> str:
    if not tags:
        return "all"
    return ", ".join(f"{k}={'–' if v is None else v}" for k, v in tags.items())


def known_tags(store: MetricsSql, sel: Exploration) -> list[str]:
    """Tags to offer for group-by: the metric's, plus any the URL names."""
    if sel.metric in RUN_METRICS:
        tags = set(RUN_TAGS)
    elif sel.metric in BATCH_METRICS:
        tags = set(BATCH_TAGS)
    else:
        tags = {k for t in store.list_metric_series(sel.project, sel.metric).values() for k in t}
    ordered = sorted(tags)
    return ordered + [t for t in sel.group_by if t not in tags]


def table(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The series side by side: one row per bucket time, one column per series."""
    names = [series_name(s["tags"]) for s in result["series"]]
    by_time: dict[str, list[Any]] = {}
    for i, s in enumerate(result["series"]):
        for at, value in s["points"]:
            by_time.setdefault(at, [None] * len(names))[i] = value
    return names, [[at, *by_time[at]] for at in sorted(by_time)]


def _store(svc: Services) -> MetricsSql:
    store = svc.store
    if not isinstance(store, MetricsSql):
        raise InvalidInput([FieldProblem("metric", "this store keeps no metrics")])
    return store


@router.get("/explore")
def explore_page(request: Request, svc: Svc) -> Response:
    try:
        store = _store(svc)
        project = one(request.query_params, "project") or "default"
        names = store.list_metric_names(project)
        sel = parse_exploration(request.query_params, names[0][0] if names else "runs.count")
        tags = known_tags(store, sel)
    except FlowdeckError as exc:
        return error_page(request, exc)
    now = svc.clock()
    body = query_body(sel, now)
    result: dict[str, Any] | None = None
    problem = None
    try:
        result = explore(store, sel, now)
    except InvalidInput as exc:
        # A step too fine for the range: say so beside the form, not instead of it.
        problem = str(exc)
    columns, rows = table(result) if result else ([], [])
    return page(
        request,
        "explore.html",
        {
            "sel": sel,
            "names": names,
            "run_metrics": sorted(RUN_METRICS),
            "batch_metrics": sorted(BATCH_METRICS),
            "aggregations": AGGREGATIONS,
            "ranges": RANGES,
            "steps": STEPS,
            "tags": tags,
            "result": result,
            "problem": problem,
            "columns": columns,
            "rows": rows[:MAX_TABLE_ROWS],
            "rows_left_out": max(0, len(rows) - MAX_TABLE_ROWS),
            "number": number,
            "step_text": step_text,
            "query_json": orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(),
            "csv_url": sel.url("/explore.csv"),
            "chart_json": orjson.dumps(
                {
                    "metric": sel.metric,
                    "aggregation": sel.aggregation,
                    "chart": sel.chart,
                    "step": result["step"] if result else 0,
                    "series": [
                        {"name": series_name(s["tags"]), "tags": s["tags"], "points": s["points"]}
                        for s in (result or {}).get("series", [])
                    ],
                }
            ).decode(),
            "nav": "explore",
        },
    )


@router.get("/explore.csv")
def explore_csv(request: Request, svc: Svc) -> Response:
    """The shown series as CSV: one row per series and bucket (time, group tags, value)."""
    try:
        store = _store(svc)
        sel = parse_exploration(request.query_params, "runs.count")
        result = explore(store, sel, svc.clock())
    except FlowdeckError as exc:
        return error_page(request, exc)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", *sel.group_by, sel.aggregation])
    for s in result["series"]:
        tags = [s["tags"].get(t) or "" for t in sel.group_by]
        for at, value in s["points"]:
            writer.writerow([at, *tags, "" if value is None else value])
    filename = f"{sel.metric}-{sel.aggregation}.csv".replace('"', "")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
