"""The data of one widget over a dashboard's time range, as plain functions over the services.

Metric widgets run their query through the metrics query API's own functions (so a widget
shows exactly what ``POST /api/v1/metrics/query`` answers); single-value widgets (stat,
gauge, pie, table) then reduce each series to one number. ``alerts`` reads alerting's
current alerts; ``batch_status`` the latest batch's summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from flowdeck.api.services import Services
from flowdeck.batches import batch_summary
from flowdeck.dashboards.model import TimeRange, Widget, WidgetQuery
from flowdeck.errors import FieldProblem, InvalidInput, NotFound
from flowdeck.store import BatchQuery
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.timeseries.query import MetricQuery, MetricSpec, check_step, plan_query, run_query

# Steps ``auto`` picks from: the finest that gives at most AUTO_BUCKETS over the range.
STEPS: Final = (60, 300, 900, 3_600, 21_600, 86_400, 604_800)
AUTO_BUCKETS: Final = 120
# The latest batch is looked for this far back from the range's end.
BATCH_LOOKBACK: Final = timedelta(days=90)
REDUCED: Final = frozenset({"pie", "gauge", "stat", "table"})


def auto_step(start: datetime, end: datetime) -> int:
    span = (end - start).total_seconds()
    return next((s for s in STEPS if span / s <= AUTO_BUCKETS), STEPS[-1])


def series_name(tags: dict[str, str | None]) -> str:
    """``prod`` for one group-by tag, ``env=prod, status=FAILED`` for more, ``all`` for none."""
    if not tags:
        return "all"
    if len(tags) == 1:
        value = next(iter(tags.values()))
        return "–" if value is None else value
    return ", ".join(f"{k}={'–' if v is None else v}" for k, v in tags.items())


def widget_data(svc: Services, widget: Widget, time_range: TimeRange) -> dict[str, Any]:
    """What ``widget`` shows over ``time_range`` (ending now for a relative range)."""
    start, end = time_range.window(svc.clock())
    out: dict[str, Any] = {"id": widget.id, "type": widget.type, "start": start, "end": end}
    if widget.type == "alerts":
        out.update(_alerts(svc, widget))
    elif widget.type == "batch_status":
        out.update(_batch(svc, widget, end))
    else:
        assert widget.query is not None
        result = metric_result(svc, widget.query, start, end)
        for s in result["series"]:
            s["name"] = series_name(s["tags"])
        out["result"] = result
        if widget.type in REDUCED:
            counts = None
            if widget.options.reduce == "overall" and result["aggregation"] == "avg":
                counts = metric_result(svc, widget.query, start, end, aggregation="count")
            out["values"] = reduce_series(result, widget.options.reduce, counts)
    return out


def _store(svc: Services) -> MetricsSql:
    if not isinstance(svc.store, MetricsSql):
        raise InvalidInput([FieldProblem("widget.type", "this store keeps no metrics")])
    return svc.store


def metric_result(
    svc: Services,
    query: WidgetQuery,
    start: datetime,
    end: datetime,
    aggregation: str | None = None,
) -> dict[str, Any]:
    """The metrics query API's answer for the widget's query over [start, end)."""
    store = _store(svc)
    step = auto_step(start, end) if query.step == "auto" else check_step(query.step)
    body = query.model_dump(exclude={"step"}, exclude_none=True)
    if aggregation is not None:
        body["aggregation"] = aggregation
    saved = None
    if query.definition is not None:
        try:
            row = store.get_metric_definition(query.definition)
        except NotFound:
            raise InvalidInput(
                [FieldProblem("widget.query.definition", f"no saved {query.definition!r}")]
            ) from None
        saved = MetricSpec.model_validate(row.spec)
    metric_query = MetricQuery.model_validate({**body, "start": start, "end": end, "step": step})
    try:
        plan = plan_query(metric_query, saved)
    except InvalidInput as exc:
        raise InvalidInput(
            [FieldProblem(f"widget.query.{p.loc}", p.msg, p.type) for p in exc.problems]
        ) from None
    return run_query(store, plan)


def reduce_series(
    result: dict[str, Any], how: str, counts: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One value per series (``series``: one value, the number of series with data).
    ``overall`` is the aggregation over the whole range: exact for count, sum, min and max,
    and for avg weighted by each bucket's count (``counts``, the same query's count); for
    a percentile it is the largest bucket's value, an upper bound."""
    series = result["series"]
    if how == "series":
        return [{"name": "series", "tags": {}, "value": len(series)}]
    weights: dict[str, dict[str, float]] = {}
    if counts is not None:
        for s in counts["series"]:
            weights[series_name(s["tags"])] = {t: v for t, v in s["points"]}
    out = []
    for s in series:
        values = [v for _, v in s["points"] if v is not None]
        value = _reduce(
            how, result["aggregation"], values, s["points"], weights.get(series_name(s["tags"]))
        )
        out.append({"name": series_name(s["tags"]), "tags": s["tags"], "value": value})
    return out


def _reduce(
    how: str,
    aggregation: str,
    values: Sequence[float],
    points: Sequence[Sequence[Any]],
    weights: dict[str, float] | None,
) -> float | None:
    if not values:
        return None
    if how == "last":
        return values[-1]
    if how == "mean":
        return math.fsum(values) / len(values)
    if how == "total":
        return math.fsum(values)
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    # overall
    if aggregation in ("count", "sum"):
        return math.fsum(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "avg" and weights:
        pairs = [(v, weights.get(t, 0.0)) for t, v in points if v is not None]
        n = math.fsum(w for _, w in pairs)
        return math.fsum(v * w for v, w in pairs) / n if n else None
    return max(values)


def _alerts(svc: Services, widget: Widget) -> dict[str, Any]:
    if svc.alerts is None:
        return {"items": [], "note": "alerting is not running"}
    found = svc.alerts.db.alerts(states=widget.options.states, limit=widget.options.limit)
    items = [
        {
            "fingerprint": a.fingerprint,
            "rule": a.rule,
            "severity": a.severity,
            "state": a.state,
            "summary": a.summary,
            "labels": dict(a.labels),
            "since": a.fired_at or a.active_since,
        }
        for a in found
    ]
    return {"items": items}


def _batch(svc: Services, widget: Widget, end: datetime) -> dict[str, Any]:
    opts = widget.options
    rows = svc.store.list_batches(
        BatchQuery(
            since=end - BATCH_LOOKBACK, until=end, env=opts.env, project=opts.project, limit=1
        )
    )
    return {"batch": batch_summary(rows[0]) if rows else None}
