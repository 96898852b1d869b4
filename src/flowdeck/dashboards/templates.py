"""The built-in dashboards, "Data Ops" and "Manager", created on the first start.

Each is created once per database: a template the user deleted is not created again (see
:meth:`DashboardStore.create_templates`). They are ordinary dashboards afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from flowdeck.dashboards.model import DashboardIn, parse_dashboard
from flowdeck.dashboards.store import DashboardStore

PERCENT_OK: Final = {
    "format": "percent",
    "base": "bad",
    "thresholds": [{"value": 0.9, "level": "warn"}, {"value": 0.98, "level": "ok"}],
}


def widget(
    wid: str,
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    query: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    x, y, w, h = grid
    out: dict[str, Any] = {
        "id": wid,
        "type": kind,
        "title": title,
        "grid": {"x": x, "y": y, "w": w, "h": h},
        "options": options,
    }
    if query is not None:
        out["query"] = query
    return out


DATA_OPS: Final[dict[str, Any]] = {
    "title": "Data Ops",
    "description": "Today's batches across environments: what failed, what is slow, what "
    "lost data, and what is alerting.",
    "time_range": {"last": "24h"},
    "refresh": "30s",
    "widgets": [
        widget("batch", "batch_status", "Latest batch", (0, 0, 4, 4)),
        widget("alerts", "alerts", "Firing and pending alerts", (4, 0, 8, 4), limit=10),
        widget(
            "failures",
            "table",
            "Failures by pipeline",
            (0, 4, 4, 5),
            {
                "metric": "runs.count",
                "aggregation": "count",
                "group_by": ["pipeline"],
                "filters": [{"tag": "status", "value": "FAILED"}],
            },
            reduce="total",
            limit=10,
        ),
        widget(
            "duration-p95",
            "line",
            "Run duration p95 by env",
            (4, 4, 8, 5),
            {"metric": "runs.duration_s", "aggregation": "p95", "group_by": ["env"]},
            format="duration",
        ),
        widget(
            "rows-written",
            "bar",
            "Rows written by env",
            (0, 9, 6, 5),
            {"metric": "runs.rows_written", "aggregation": "sum", "group_by": ["env"]},
            stack=True,
        ),
        widget(
            "dq-errors",
            "line",
            "DQ errors by env",
            (6, 9, 6, 5),
            {"metric": "runs.dq_errors", "aggregation": "sum", "group_by": ["env"]},
        ),
        widget(
            "runs-by-status",
            "pie",
            "Runs by status",
            (0, 14, 4, 5),
            {"metric": "runs.count", "aggregation": "count", "group_by": ["status"]},
            reduce="total",
            donut=True,
        ),
        widget(
            "failures-heatmap",
            "heatmap",
            "Failed runs per hour by env",
            (4, 14, 8, 5),
            {
                "metric": "runs.count",
                "aggregation": "count",
                "group_by": ["env"],
                "filters": [{"tag": "status", "value": "FAILED"}],
                "step": "1h",
            },
        ),
    ],
}

MANAGER: Final[dict[str, Any]] = {
    "title": "Manager",
    "description": "Reliability over the last 30 days: success rate, volume, active "
    "pipelines, batch health compliance (the share of green batches) and data quality.",
    "time_range": {"last": "30d"},
    "refresh": "1m",
    "widgets": [
        widget(
            "success-rate",
            "stat",
            "Success rate",
            (0, 0, 3, 4),
            {"metric": "runs.success_rate", "aggregation": "avg"},
            reduce="overall",
            **PERCENT_OK,
        ),
        widget(
            "runs",
            "stat",
            "Runs",
            (3, 0, 3, 4),
            {"metric": "runs.count", "aggregation": "count"},
            reduce="overall",
        ),
        widget(
            "active-pipelines",
            "stat",
            "Active pipelines",
            (6, 0, 3, 4),
            {"metric": "runs.count", "aggregation": "count", "group_by": ["pipeline"]},
            reduce="series",
        ),
        widget(
            "compliance",
            "gauge",
            "Batch health compliance",
            (9, 0, 3, 4),
            {"metric": "batches.green", "aggregation": "avg"},
            reduce="overall",
            min=0,
            max=1,
            **PERCENT_OK,
        ),
        widget(
            "success-trend",
            "line",
            "Success rate per day",
            (0, 4, 6, 5),
            {"metric": "runs.success_rate", "aggregation": "avg", "step": "1d"},
            format="percent",
        ),
        widget(
            "runs-per-day",
            "bar",
            "Runs per day by status",
            (6, 4, 6, 5),
            {
                "metric": "runs.count",
                "aggregation": "count",
                "group_by": ["status"],
                "step": "1d",
            },
            stack=True,
        ),
        widget(
            "compliance-trend",
            "line",
            "Green batches per day by env",
            (0, 9, 6, 5),
            {"metric": "batches.green", "aggregation": "avg", "group_by": ["env"], "step": "1d"},
            format="percent",
        ),
        widget(
            "dq-trend",
            "bar",
            "DQ errors per day by env",
            (6, 9, 6, 5),
            {"metric": "runs.dq_errors", "aggregation": "sum", "group_by": ["env"], "step": "1d"},
            stack=True,
        ),
    ],
}

# name → (dashboard id, definition)
TEMPLATES: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "data-ops": ("data-ops", DATA_OPS),
    "manager": ("manager", MANAGER),
}


def template(name: str) -> DashboardIn:
    return parse_dashboard(TEMPLATES[name][1])


def create_templates(db: DashboardStore, now: datetime) -> list[str]:
    """Create the templates this database never had; returns the names created."""
    return db.create_templates(
        ((name, did, template(name).spec()) for name, (did, _) in TEMPLATES.items()), now
    )
