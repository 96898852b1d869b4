"""Sources: each pipeline (or each value of a label such as ``retailer``) as a feed of data
someone waits for. How fresh it is, whether it fails, and the trend of one numeric field.

A source is stale when its last successful run ended longer ago than its staleness
threshold: the smallest ``max_age`` of the enabled ``stale`` rules whose selector matches
it, else :data:`DEFAULT_STALE_S` (4 h). A pipeline that never succeeded is measured from
its earliest run in the history read (as the ``stale`` rule measures from its first run).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from flowdeck.alerts.rules import Rule
from flowdeck.errors import FieldProblem, InvalidInput, NotFound
from flowdeck.pipelines import PipelineKey, PipelineState
from flowdeck.runs import RunRecord
from flowdeck.store import Store

DEFAULT_STALE_S: Final = 4 * 3600.0
# Runs read per pipeline for the list's sparklines, and for a source's own page.
LIST_RUNS: Final = 30
DETAIL_RUNS: Final = 500
# Every pipeline's last runs are read in one query over the runs of this window (a
# pipeline that runs daily has 30 in it); a pipeline that has fewer there than it has runs
# is read on its own.
RECENT_WINDOW: Final = timedelta(days=35)
STANDARD_FIELDS: Final = (
    "rows_written",
    "rows_read",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
    "duration_s",
)
NO_LABEL: Final = "(none)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_STATUS_ORDER: Final = {"FAILED": 0, "RUNNING": 1, "PENDING": 2, "SUCCESS": 3}


def check_field(field: str) -> str:
    """A trend field: a run column or a custom_stats key (``sku_count``)."""
    if not _NAME.match(field):
        raise InvalidInput(
            [
                FieldProblem(
                    "field",
                    "must be rows_written, rows_read, rows_inserted, rows_updated, dq_errors, "
                    f"duration_s or a custom_stats key (letters, digits, _ . -); got {field!r}",
                )
            ]
        )
    return field


def check_label(by: str) -> str | None:
    """``pipeline`` (None) or a label name to group by."""
    if by == "pipeline":
        return None
    if by.startswith("label:"):
        by = by[len("label:") :]
    if not _NAME.match(by):
        raise InvalidInput(
            [FieldProblem("by", f"must be pipeline or a label name such as retailer; got {by!r}")]
        )
    return by


def run_value(run: RunRecord, field: str) -> float | None:
    """The field's number in this run (None when the run has none)."""
    value: Any = getattr(run, field) if field in STANDARD_FIELDS else run.custom_stats.get(field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def numeric_keys(runs: Iterable[RunRecord]) -> set[str]:
    """custom_stats keys holding numbers in any of these runs."""
    return {
        k
        for r in runs
        for k, v in r.custom_stats.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and _NAME.match(k)
    }


def stale_threshold(
    rules: Iterable[Rule], project: str, env: str, pipeline: str, labels: Mapping[str, str]
) -> tuple[float, str | None]:
    """(seconds, rule name): the tightest enabled stale rule that watches this pipeline."""
    best: tuple[float, str | None] = (DEFAULT_STALE_S, None)
    found = False
    for rule in rules:
        if rule.kind != "stale" or not rule.enabled:
            continue
        if not rule.selector.matches(project, env, pipeline, labels):
            continue
        max_age = float(rule.param("max_age") or DEFAULT_STALE_S)
        if not found or max_age < best[0]:
            best, found = (max_age, rule.name), True
    return best


def recent_runs(
    store: Store,
    states: Sequence[PipelineState],
    limit: int,
    now: datetime,
    project: str | None = None,
    env: str | None = None,
) -> dict[PipelineKey, list[RunRecord]]:
    """The newest ``limit`` runs of each pipeline (of ``states``), newest first."""
    found = store.list_recent_runs(now - RECENT_WINDOW, limit, project=project, env=env)
    out: dict[PipelineKey, list[RunRecord]] = {}
    for state in states:
        runs = found.get(state.key, [])
        if len(runs) < min(limit, state.runs):  # it has older ones
            runs = store.list_pipeline_runs(state.project, state.pipeline, state.env, limit)
        out[state.key] = runs
    return out


@dataclass(frozen=True, slots=True)
class Lookup:
    store: Store
    rules: Sequence[Rule]
    now: datetime


def _pipeline_source(
    look: Lookup, state: PipelineState, runs: Sequence[RunRecord], field: str
) -> dict[str, Any]:
    labels = runs[0].labels if runs else {}
    threshold, rule = stale_threshold(look.rules, state.project, state.env, state.pipeline, labels)
    since = state.last_success_at
    if since is None:
        firsts = [r.started_at or r.created_at for r in runs]
        since = min(firsts) if firsts else state.last_run_at
    age = (look.now - since).total_seconds()
    oldest_first = list(reversed(runs))
    return {
        "key": state.pipeline,
        "project": state.project,
        "env": state.env,
        "pipeline": state.pipeline,
        "pipelines": 1,
        "labels": dict(labels),
        "runs": state.runs,
        "last_run_id": state.last_run_id,
        "last_run_at": state.last_run_at,
        "status": state.last_status,
        "last_success_at": state.last_success_at,
        "seconds_since_success": age if state.last_success_at is not None else None,
        "consecutive_failures": state.consecutive_failures,
        "stale": age > threshold,
        "stale_after_s": threshold,
        "stale_rule": rule,
        "failures": sum(1 for r in runs if r.status == "FAILED"),
        "recent_runs": len(runs),
        "latest_value": next(
            (v for r in runs if r.status == "SUCCESS" and (v := run_value(r, field)) is not None),
            None,
        ),
        "trend": [
            {
                "t": r.started_at or r.created_at,
                "value": run_value(r, field),
                "status": r.status,
                "batch_id": r.batch_id,
            }
            for r in oldest_first
        ],
    }


def _batches(members: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The members' trends merged per batch, oldest first: the field summed, the worst
    status, and how many of the members' runs (and failed ones) the batch has."""
    per_batch: dict[str, dict[str, Any]] = {}
    for m in members:
        for point in m["trend"]:
            b = per_batch.setdefault(
                point["batch_id"],
                {**point, "value": None, "status": "SUCCESS", "runs": 0, "failed": 0},
            )
            b["t"] = min(b["t"], point["t"])
            b["runs"] += 1
            b["failed"] += point["status"] == "FAILED"
            if point["value"] is not None:
                b["value"] = (b["value"] or 0.0) + point["value"]
            if _STATUS_ORDER[point["status"]] < _STATUS_ORDER[b["status"]]:
                b["status"] = point["status"]
    return sorted(per_batch.values(), key=lambda p: (p["t"], p["batch_id"]))


def _group(label: str, value: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    """A label value's pipelines as one source: the worst of each, the field summed per
    batch."""
    successes = [m["last_success_at"] for m in members if m["last_success_at"] is not None]
    trend = [
        {k: p[k] for k in ("t", "value", "status", "batch_id")}
        for p in _batches(members)[-LIST_RUNS:]
    ]
    latest_ok = next(
        (p["value"] for p in reversed(trend) if p["status"] == "SUCCESS" and p["value"]), None
    )
    last = max(members, key=lambda m: m["last_run_at"])
    return {
        "key": value,
        "project": members[0]["project"],
        "env": members[0]["env"],
        "pipeline": None,
        "label": label,
        "pipelines": len(members),
        "labels": {label: value},
        "runs": sum(m["runs"] for m in members),
        "last_run_id": last["last_run_id"],
        "last_run_at": last["last_run_at"],
        "status": min((m["status"] for m in members), key=_STATUS_ORDER.__getitem__),
        "last_success_at": max(successes) if successes else None,
        "seconds_since_success": min(
            (m["seconds_since_success"] for m in members if m["seconds_since_success"] is not None),
            default=None,
        ),
        "consecutive_failures": max(m["consecutive_failures"] for m in members),
        "stale": any(m["stale"] for m in members),
        "stale_pipelines": sum(1 for m in members if m["stale"]),
        "stale_after_s": min(m["stale_after_s"] for m in members),
        "stale_rule": None,
        "failures": sum(m["failures"] for m in members),
        "recent_runs": sum(m["recent_runs"] for m in members),
        "latest_value": latest_ok,
        "trend": trend,
        "members": [m["pipeline"] for m in sorted(members, key=lambda m: m["pipeline"])],
    }


def _order(item: dict[str, Any]) -> tuple[Any, ...]:
    """Stale first, then failing, then by name."""
    return (
        not item["stale"],
        item["status"] != "FAILED",
        item["project"],
        item["env"],
        item["key"],
    )


def _fields(keys: set[str]) -> list[str]:
    """The fields a trend can show: the standard ones, then the numeric custom_stats keys."""
    return [*STANDARD_FIELDS, *sorted(keys - set(STANDARD_FIELDS))]


def _failure(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "batch_id": run.batch_id,
        "t": run.started_at or run.created_at,
        "ended_at": run.ended_at,
        "error_message": run.error_message,
    }


def list_sources(
    store: Store,
    rules: Sequence[Rule],
    now: datetime,
    *,
    by: str = "pipeline",
    field: str = "rows_written",
    project: str | None = None,
    env: str | None = None,
) -> dict[str, Any]:
    """Every source with its freshness and the trend of ``field`` over its last runs."""
    label = check_label(by)
    check_field(field)
    look = Lookup(store, rules, now)
    states = store.list_pipelines(project=project, env=env)
    pipelines: list[dict[str, Any]] = []
    keys: set[str] = set()
    label_names: set[str] = set()
    recent = recent_runs(store, states, LIST_RUNS, now, project, env)
    for state in states:
        runs = recent[state.key]
        keys |= numeric_keys(runs[:1])
        if runs:
            label_names |= set(runs[0].labels)
        pipelines.append(_pipeline_source(look, state, runs, field))
    if label is None:
        items = pipelines
    else:
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for p in pipelines:
            value = p["labels"].get(label, NO_LABEL)
            groups.setdefault((p["project"], p["env"], value), []).append(p)
        items = [_group(label, k[2], members) for k, members in groups.items()]
    items.sort(key=_order)
    return {
        "by": "pipeline" if label is None else label,
        "field": field,
        "fields": _fields(keys),
        "labels": sorted(label_names),
        "default_stale_after_s": DEFAULT_STALE_S,
        "total": len(items),
        "stale": sum(1 for i in items if i["stale"]),
        "failing": sum(1 for i in items if i["status"] == "FAILED"),
        "items": items,
    }


def get_source(
    store: Store,
    rules: Sequence[Rule],
    now: datetime,
    pipeline: str,
    *,
    field: str = "rows_written",
    project: str | None = None,
    env: str | None = None,
    limit: int = DETAIL_RUNS,
) -> dict[str, Any]:
    """One pipeline as a source: its freshness, the full trend of ``field`` (oldest first),
    and its failures (newest first)."""
    check_field(field)
    states = [s for s in store.list_pipelines(project=project, env=env) if s.pipeline == pipeline]
    if not states:
        raise NotFound("pipeline", pipeline)
    if len(states) > 1:
        where = ", ".join(sorted(f"{s.project}/{s.env}" for s in states))
        raise InvalidInput(
            [FieldProblem("env", f"pipeline {pipeline!r} runs in {where}: choose one")]
        )
    state = states[0]
    runs = store.list_pipeline_runs(state.project, state.pipeline, state.env, limit)
    out = _pipeline_source(Lookup(store, rules, now), state, runs, field)
    out["field"] = field
    out["fields"] = _fields(numeric_keys(runs))
    out["history"] = [
        {
            "run_id": r.run_id,
            "batch_id": r.batch_id,
            "status": r.status,
            "t": r.started_at or r.created_at,
            "value": run_value(r, field),
            "duration_s": r.duration_s,
            "rows_read": r.rows_read,
            "rows_written": r.rows_written,
            "dq_errors": r.dq_errors,
        }
        for r in reversed(runs)
    ]
    out["failure_history"] = [_failure(r) for r in runs if r.status == "FAILED"]
    del out["trend"]
    return out


def get_source_group(
    store: Store,
    rules: Sequence[Rule],
    now: datetime,
    label: str,
    value: str,
    *,
    field: str = "rows_written",
    project: str | None = None,
    env: str | None = None,
    limit: int = DETAIL_RUNS,
) -> dict[str, Any]:
    """The pipelines whose last run carries ``label=value`` (``(none)``: without the label),
    as one source: each pipeline's state, the field summed per batch over their last
    ``limit`` runs each (oldest first), and their failures (newest first)."""
    name = check_label(label)
    if name is None:
        raise InvalidInput(
            [FieldProblem("label", "must be a label name such as retailer; got 'pipeline'")]
        )
    check_field(field)
    found: dict[tuple[str, str], list[PipelineState]] = {}
    states = store.list_pipelines(project=project, env=env)
    lasts = recent_runs(store, states, 1, now, project, env)
    for state in states:
        # Membership as on the list: the labels of the pipeline's last run.
        last = lasts[state.key]
        if last and last[0].labels.get(name, NO_LABEL) == value:
            found.setdefault((state.project, state.env), []).append(state)
    if not found:
        raise NotFound("source", f"{name}={value}")
    if len(found) > 1:
        where = ", ".join(sorted(f"{p}/{e}" for p, e in found))
        raise InvalidInput([FieldProblem("env", f"{name} {value!r} runs in {where}: choose one")])
    look = Lookup(store, rules, now)
    members: list[dict[str, Any]] = []
    keys: set[str] = set()
    failures: list[dict[str, Any]] = []
    chosen = next(iter(found.values()))
    group_project, group_env = chosen[0].project, chosen[0].env
    recent = recent_runs(store, chosen, limit, now, group_project, group_env)
    for state in chosen:
        runs = recent[state.key]
        keys |= numeric_keys(runs)
        members.append(_pipeline_source(look, state, runs, field))
        failures += [{"pipeline": r.pipeline, **_failure(r)} for r in runs if r.status == "FAILED"]
    out = _group(name, value, members)
    del out["trend"]
    out["field"] = field
    out["fields"] = _fields(keys)
    out["sources"] = [
        {k: v for k, v in m.items() if k != "trend"} for m in sorted(members, key=_order)
    ]
    out["history"] = _batches(members)
    out["failure_history"] = sorted(failures, key=lambda f: (f["t"], f["run_id"]), reverse=True)
    return out
